"""evaluate(cfg): metrics of finished runs, t-SNE baselines, and the paper's tables.

Like :mod:`medviz.training.pipeline`, the only place here that reads a whole config.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml
from omegaconf import DictConfig

from medviz.data.image_arrays import ImageArrays
from medviz.data.prepare.subset import stratified_rows
from medviz.errors import ConfigError
from medviz.evaluation import paper_numbers
from medviz.evaluation.imagenet_features import imagenet_features
from medviz.evaluation.linear import linear_probe_accuracy
from medviz.evaluation.map_metrics import map_metrics
from medviz.evaluation.sweep_jobs import MissingJob, missing_in
from medviz.evaluation.tables import (
    add_missing,
    aggregate,
    find_run_dirs,
    load_run,
    to_csv,
    to_markdown,
    write_batch_table,
)
from medviz.evaluation.tsne import feature_tsne, pixel_tsne
from medviz.maps.plots import plot_panels, save_map_figure
from medviz.runs.files import save_embedding, write_metrics
from medviz.runs.rebuild import build_data
from medviz.store.gather import gather

log = logging.getLogger("medviz")

BASELINES = ("pixels", "resnet18", "resnet152")


def evaluate_run(run_dir: Path, k: int, seed: int) -> dict:
    """Recompute a training run's map metrics, and add the linear probe for feature runs."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist: pass a folder that train.py wrote")
    if not (run_dir / "embedding.npz").is_file():
        raise FileNotFoundError(
            f"{run_dir} has no embedding.npz: is it a finished training run folder? (resume=<folder> finishes "
            "an interrupted one)"
        )
    saved = np.load(run_dir / "embedding.npz")
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    metrics.update(map_metrics(saved["embedding"], saved["labels"], k=k, seed=seed))
    features_path = run_dir / "features.npz"
    split_path = run_dir / "split.npy"
    if features_path.is_file() and split_path.is_file():
        features = np.load(features_path)
        is_test = np.load(split_path) == "test"
        if is_test.any():
            metrics["linear_accuracy"] = linear_probe_accuracy(features["features"], features["labels"], is_test)
    write_metrics(run_dir, metrics)
    return metrics


def run_baseline(
    name: str, data: ImageArrays, out_dir: Path, seed: int, k: int, weights: dict, max_images: int | None = None
) -> Path:
    """A t-SNE baseline on ``data`` written as a run folder (a row 'tsne / <name>' in the tables).

    ``max_images``: embed a class-stratified subset of at most that many images (t-SNE needs them
    all in memory and grows faster than linearly); the folder's ``index`` gives their rows.
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline '{name}'; choose from {', '.join(BASELINES)}")
    run_dir = out_dir / f"tsne-{name}-{data.name}-seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = stratified_rows(data.labels, max_images if max_images is not None else len(data), seed)
    subset = f"a class-stratified {len(rows)} of " if len(rows) < len(data) else ""
    log.info(f"baseline t-SNE of {name} on {subset}{data.name}'s {len(data)} images")
    images = gather(data.images, rows)
    if name == "pixels":
        coords = pixel_tsne(images, seed=seed, intensity=data.scale())
    else:
        coords = feature_tsne(imagenet_features(images, arch=name, weights=weights[name]), seed=seed)
    config = {"method": {"name": "tsne"}, "aug": {"name": name}, "dataset": {"name": data.name}, "seed": seed}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    shown = replace(data, images=images, labels=data.labels[rows], split=None, files=None)
    save_embedding(run_dir, coords, shown, rows)
    metrics = {**map_metrics(coords, shown.labels, k=k, seed=seed), "n_images": len(rows)}
    write_metrics(run_dir, metrics)
    save_map_figure(run_dir, coords, shown, f"{data.name} · t-SNE of {name} · seed {seed}", metrics)
    return run_dir


TABLES = {
    2: ("table2_knn", "Table 2: kNN accuracy of the 2-D maps (%)", "knn_accuracy", True, paper_numbers.TABLE2_KNN),
    3: (
        "table3_silhouette",
        "Table 3: silhouette of the 2-D maps",
        "silhouette",
        False,
        paper_numbers.TABLE3_SILHOUETTE,
    ),
    4: ("table4_ablation_knn", "Table 4: ablations, kNN accuracy (%)", "knn_accuracy", True, paper_numbers.TABLE4_KNN),
    5: (
        "table5_linear",
        "Table 5: linear evaluation of SimCLR features (%)",
        "linear_accuracy",
        True,
        paper_numbers.TABLE5_LINEAR,
    ),
}
ABLATION_AUGS = {"randrot", "nocrop", "nojitter", "nogray"}


def write_tables(
    run_dirs: list[Path], numbers: list[int], out_dir: Path, with_paper: bool, missing: list[MissingJob] = ()
) -> list[Path]:
    """Markdown and CSV for each requested table; returns the Markdown paths.

    ``missing``: sweep jobs without results; each counts in its cell (n=k of m) and is listed under the table.
    """
    results = [load_run(d) for d in run_dirs]
    written = []
    for number in numbers:
        stem, title, metric, percent, paper = TABLES[number]
        rows = [r for r in results if (r.method == "tsimcne" and r.aug in ABLATION_AUGS) or number != 4]
        table = aggregate(rows, metric)
        absent = [j for j in missing if number != 4 or (j.row and j.row[0] == "tsimcne" and j.row[1] in ABLATION_AUGS)]
        if table:
            add_missing(table, absent)
        if number == 4:  # Table 4 also reports silhouette
            sil = aggregate(rows, "silhouette")
            extra = to_markdown(
                sil, "Table 4: ablations, silhouette", False, paper_numbers.TABLE4_SILHOUETTE if with_paper else None
            )
        else:
            extra = ""
        if not table:
            log.warning(f"no runs report {metric}: {stem} skipped")
            continue
        markdown = to_markdown(table, title, percent, paper if with_paper else None) + ("\n" + extra if extra else "")
        if absent:
            markdown += "\nSweep jobs without results (not in the means above):\n\n"
            markdown += "".join(f"- {job.describe()}\n" for job in absent)
        path = out_dir / f"{stem}.md"
        path.write_text(markdown)
        to_csv(table, out_dir / f"{stem}.csv", paper if with_paper else None)
        print(markdown)
        written.append(path)
    return written


FIGURE2_PANELS = (
    ("pixels", "t-SNE of pixels"),
    ("resnet", "t-SNE of ImageNet ResNet"),
    ("default", "t-SimCNE, default augmentations"),
    ("rotations", "t-SimCNE, with rotations"),
)


def figure2(panel_runs: dict, out_dir: Path, small_class_fraction: float) -> Path:
    """Paper Fig. 2: four maps of the same dataset side by side, from four run folders."""
    panels, labels, names = [], None, None
    for key, title in FIGURE2_PANELS:
        if key not in panel_runs:
            raise FileNotFoundError(f"figure2 needs a run folder for '{key}' (keys: {[k for k, _ in FIGURE2_PANELS]})")
        run_dir = Path(panel_runs[key])
        saved = np.load(run_dir / "embedding.npz")
        if labels is not None and not np.array_equal(saved["labels"], labels):
            raise ValueError(f"{run_dir} embeds a different dataset than the other panels")
        labels, names = saved["labels"], tuple(saved["class_names"].tolist())
        metrics = json.loads((run_dir / "metrics.json").read_text())
        panels.append((title, saved["embedding"], metrics))
    return plot_panels(panels, labels, names, out_dir / "figure2.png", small_class_fraction)


def evaluate(cfg: DictConfig) -> None:
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.run:
        metrics = evaluate_run(Path(cfg.run), k=cfg.knn_k, seed=cfg.seed)
        print(f"{cfg.run}: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(metrics.items()) if isinstance(v, float)))
    baseline_dirs = []
    if cfg.get("harmony"):
        if not cfg.run:
            raise ConfigError("harmony=true corrects a finished run's features: give it with run=<run folder>")
        from medviz.evaluation.harmony import harmony_baseline  # harmonypy is only needed here

        folder = harmony_baseline(
            Path(cfg.run), out_dir / "baselines", k=cfg.knn_k, seed=cfg.seed, max_points=int(cfg.batch_metrics_points)
        )
        baseline_dirs.append(folder)
        print(f"Harmony + t-SNE of {cfg.run}: {folder}")
    if cfg.baselines:
        data = build_data(cfg)
        for name in cfg.baselines:
            baseline_dirs.append(
                run_baseline(
                    name,
                    data,
                    out_dir / "baselines",
                    cfg.seed,
                    cfg.knn_k,
                    cfg.resnet_weights,
                    max_images=cfg.get("tsne_max_images"),
                )
            )
    if cfg.runs or baseline_dirs:
        run_dirs = find_run_dirs(list(cfg.runs)) + baseline_dirs
        missing = missing_in([Path(p) for p in cfg.runs])
        for job in missing:
            log.warning(f"left out of the tables: {job.describe()}")
        write_tables(run_dirs, list(cfg.tables), out_dir, cfg.paper, missing)
        batches = write_batch_table([load_run(d) for d in run_dirs], out_dir)
        if batches is not None:
            print(batches.read_text())
        print(f"tables written to {out_dir}")
    if cfg.figure2:
        print(f"figure 2: {figure2(dict(cfg.figure2), out_dir, cfg.small_class_fraction)}")
