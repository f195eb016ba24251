"""The baseline a profiling user runs against technical batches: Harmony, then t-SNE.

Harmony (Korsunsky et al. 2019; ``harmonypy``) corrects an embedding of any dimension for a batch
covariate by soft k-means; on Cell Painting it is among the best correction methods measured
(Arevalo et al. 2024: top three in five of five scenarios). Here it runs on a finished run's
high-dimensional output (t-SimCNE's 128-D layer; SimCLR's and BYOL's backbone features), reduced
to its first principal components as Harmony expects, and the corrected features are mapped with
openTSNE -- a map to compare with t-SimCNE's own, by the same metrics (docs/invariance.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import yaml

from medviz.errors import DataError
from medviz.evaluation.map_metrics import batch_metrics, map_metrics
from medviz.evaluation.tsne import feature_tsne
from medviz.maps.plots import save_map_figure
from medviz.runs.files import OUTPUTS_FILE, save_embedding, write_metrics
from medviz.runs.rebuild import open_finished_run

log = logging.getLogger("medviz")

#: Principal components Harmony corrects (its authors' and scanpy's usual 50).
COMPONENTS = 50


def principal_components(features: np.ndarray, components: int = COMPONENTS) -> np.ndarray:
    """Centred features (N, D) -> their first ``components`` principal components (N, min(components, D, N-1))."""
    centred = features.astype(np.float64) - features.mean(axis=0)
    keep = max(1, min(components, centred.shape[1], len(centred) - 1))
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return (u[:, :keep] * s[:keep]).astype(np.float32)


#: Below this share of the components' norm, Harmony is said to have moved nothing.
UNMOVED = 1e-3


def relative_change(before: np.ndarray, after: np.ndarray) -> float:
    """How far Harmony moved the points: ||after - before|| / ||before|| over arrays (N, d)."""
    scale = float(np.linalg.norm(before))
    return float(np.linalg.norm(after - before)) / scale if scale > 0 else 0.0


def harmony_corrected(features: np.ndarray, batches: np.ndarray, seed: int = 0) -> np.ndarray:
    """Features (N, D) and each point's technical batch (N,) -> Harmony-corrected principal components (N, d)."""
    return harmony_correction(features, batches, seed)[0]


def harmony_correction(features: np.ndarray, batches: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
    """Features (N, D) and each point's technical batch (N,) -> the corrected principal components
    (N, d) and how far Harmony moved them (:func:`relative_change`).

    Warns when the correction moved nothing: Harmony aligns technical batches inside the clusters
    they share, so batches that already lie in clusters of their own are left where they are -- a
    map of such data is not corrected, and the user should know why.
    """
    import harmonypy  # imported here: only this baseline needs it

    components = principal_components(features)
    table = {"batch": np.asarray([str(b) for b in batches])}
    result = harmonypy.run_harmony(components, table, "batch", random_state=seed, verbose=False)
    corrected = np.asarray(result.Z_corr, dtype=np.float32)
    # harmonypy 2 returns (N, d); earlier releases returned (d, N).
    corrected = corrected if corrected.shape[0] == len(features) else corrected.T
    moved = relative_change(components, corrected)
    if moved < UNMOVED:
        log.warning(
            "Harmony left the features as they were: it aligns technical batches inside the clusters they "
            "share, and here the batches lie apart, each in clusters of one technical batch only. Train with "
            "invariance=batch instead (docs/invariance.md)."
        )
    return corrected, moved


def harmony_baseline(run_dir: Path, out_dir: Path, k: int, seed: int, max_points: int) -> Path:
    """Harmony on ``run_dir``'s high-dimensional output, then openTSNE; written as a run folder
    ``<out_dir>/harmony-<run>`` (embedding, metrics with the batch metrics of the map and of the
    corrected features, map figure) that the tables and the invariance report read like any run."""
    arrays, data, _ = open_finished_run(run_dir)
    batches = data.batches()
    if batches is None or len(batches[1]) < 2:
        raise DataError(
            f"{run_dir}: Harmony corrects technical batches, and this run has "
            + ("none: train with dataset.batch=<column>" if batches is None else "only one")
        )
    outputs = run_dir / OUTPUTS_FILE
    if outputs.is_file():
        with np.load(outputs) as saved:
            features = saved["high"] if "high" in saved.files else saved["features"]
            index = saved["index"]
    elif (run_dir / "features.npz").is_file():
        with np.load(run_dir / "features.npz") as saved:
            features, index = saved["features"], saved["index"]
    else:
        raise DataError(f"{run_dir} has no {OUTPUTS_FILE} or features.npz: its features were not saved")
    if not np.array_equal(index, arrays["index"]):
        raise DataError(f"{run_dir}: its features and its map list different images; train the run again")
    codes, names = batches
    log.info(f"Harmony on {features.shape[1]}-D features of {len(features)} images, {len(names)} technical batches")
    corrected, moved = harmony_correction(features, codes, seed=seed)
    coords = feature_tsne(corrected, seed=seed)
    target = out_dir / f"harmony-{run_dir.name}"
    target.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["method"] = {"name": f"harmony+tsne of {config.get('method', {}).get('name', 'run')}"}
    config["baseline_of"] = str(run_dir)
    (target / "config.yaml").write_text(yaml.safe_dump(config))
    save_embedding(target, coords, data, arrays["index"])
    metrics = {
        "n_images": len(coords),
        "harmony_relative_change": moved,
        **map_metrics(coords, data.labels, k=k, seed=seed),
        **batch_metrics(coords, corrected, data, k=k, seed=seed, max_points=max_points),
    }
    write_metrics(target, metrics)
    save_map_figure(target, coords, data, f"{data.name} · Harmony + t-SNE of {run_dir.name}", metrics)
    return target
