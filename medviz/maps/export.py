"""A finished run as the files the rest of the field opens: AnnData (scanpy, cellxgene, scib-metrics,
Vitessce) and a Parquet profile table (pycytominer).

``medviz export --run <run dir>`` writes ``map.h5ad``: one observation per point, in the order of
``embedding.npz``; ``obs`` = the run's metadata (its ``metadata.parquet``: names exactly as given,
text as categories) plus the key column and the class; ``obsm["X_<method>"]`` = the map (N, 2),
``obsm["X_<method>_128d"]`` = t-SimCNE's 128-D output; ``X`` = the backbone's features (empty with
``--no-features``); ``uns["<column>_colors"]`` = a colour per category (scanpy's convention, which
cellxgene reads); ``uns["medviz_config"]`` = the run's config as YAML text (h5ad holds no nulls).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from matplotlib.colors import to_hex
from omegaconf import OmegaConf

from medviz.data.prepare.metadata import relative_paths
from medviz.errors import ConfigError
from medviz.maps.colouring import class_colours
from medviz.runs.config import load_run_config
from medviz.runs.files import OUTPUTS_FILE, load_metadata

log = logging.getLogger("medviz")

#: Categorical columns with at most this many values get a palette in ``uns`` (more are no colouring).
MAX_COLOURED = 102
#: The class of each point, when classes came from folders (with ``dataset.label`` it is that column).
CLASS_COLUMN = "class"


def run_table(run_dir: Path) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """A finished run's points: the observation table (key column, class, metadata), the map (N, 2)
    and the run's config as plain data. Read from the run folder only, never from the dataset."""
    embedding_file = run_dir / "embedding.npz"
    if not embedding_file.is_file():
        raise ConfigError(f"{run_dir} is not a finished training run folder (no embedding.npz)")
    cfg = load_run_config(run_dir)
    with np.load(embedding_file) as saved:
        coords = saved["embedding"]
        labels = saved["labels"]
        class_names = [str(n) for n in saved["class_names"]]
        files = [str(f) for f in saved["files"]] if "files" in saved.files else None
    table = load_metadata(run_dir, len(coords))
    if table is None:
        root = cfg.dataset.get("path")
        table = pd.DataFrame(_keys(files, root, len(coords)))
    label_column = cfg.dataset.get("label")
    if not label_column or label_column not in table.columns:
        names = np.array([*class_names, ""], dtype=object)[np.where(labels >= 0, labels, len(class_names))]
        table[CLASS_COLUMN] = pd.Categorical(names, categories=class_names)
    return table.reset_index(drop=True), coords, OmegaConf.to_container(cfg, resolve=True)


def _keys(files: list[str] | None, root: str | None, n: int) -> dict[str, list]:
    return {"index": list(range(n))} if files is None else {"path": relative_paths(files, root)}


def observation_names(table: pd.DataFrame) -> list[str]:
    """Unique names: ``<Metadata_Plate>/<ImageNumber>/<ObjectNumber>`` for crops, the path for files, else the row."""
    if {"ImageNumber", "ObjectNumber"} <= set(table.columns):
        plate = table["Metadata_Plate"].astype(str) + "/" if "Metadata_Plate" in table.columns else ""
        names = (plate + table["ImageNumber"].astype(str) + "/" + table["ObjectNumber"].astype(str)).tolist()
    elif "path" in table.columns:
        names = table["path"].astype(str).tolist()
    else:
        names = [str(i) for i in range(len(table))]
    if len(set(names)) != len(names):  # a planted duplicate names its source again
        seen: dict[str, int] = {}
        unique = []
        for name in names:
            seen[name] = seen.get(name, 0) + 1
            unique.append(name if seen[name] == 1 else f"{name}-{seen[name] - 1}")
        names = unique
    return names


def _outputs(run_dir: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(backbone features (N, D), 128-D output (N, 128) or None) as the run saved them."""
    for name in (OUTPUTS_FILE, "features.npz"):
        path = run_dir / name
        if path.is_file():
            with np.load(path) as saved:
                return saved["features"], (saved["high"] if "high" in saved.files else None)
    return None, None


def export_h5ad(run_dir: Path, out: Path | None = None, features: bool = True) -> Path:
    """Write the run as an AnnData file (default ``<run dir>/map.h5ad``); see the module's docstring."""
    import anndata

    table, coords, config = run_table(run_dir)
    backbone, high = _outputs(run_dir)
    method = str(config.get("method", {}).get("name", "map"))
    basis = f"X_{method}" if high is not None or method == "tsimcne" else f"X_{method}_tsne"
    obs = table.copy()
    obs.index = pd.Index(observation_names(table), name=None)
    for column in obs.columns:
        if isinstance(obs[column].dtype, pd.CategoricalDtype):
            obs[column] = obs[column].cat.rename_categories([str(c) for c in obs[column].cat.categories])
        elif column == "path":
            obs[column] = obs[column].astype(str)  # one value per point: an identifier, not a category
        elif obs[column].dtype == object or pd.api.types.is_string_dtype(obs[column]):
            obs[column] = obs[column].astype(str).astype("category")  # text as categories (cellxgene colours them)
    if features and backbone is None:
        log.warning(f"{run_dir}: no saved features (a run from before they were kept): X is left empty")
    matrix = backbone.astype(np.float32) if features and backbone is not None else None
    var = pd.DataFrame(index=[f"feature_{i}" for i in range(matrix.shape[1])]) if matrix is not None else None
    adata = anndata.AnnData(X=matrix, obs=obs, var=var)
    adata.obsm[basis] = coords.astype(np.float32)
    if high is not None:
        adata.obsm[f"{basis}_128d"] = high.astype(np.float32)
    for column in obs.columns:
        if isinstance(obs[column].dtype, pd.CategoricalDtype) and len(obs[column].cat.categories) <= MAX_COLOURED:
            colours = class_colours(len(obs[column].cat.categories))
            adata.uns[f"{column}_colors"] = np.array([to_hex(c) for c in colours], dtype=object)
    adata.uns["medviz_config"] = yaml.safe_dump(config, sort_keys=False)
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        adata.uns["medviz_metrics"] = json.dumps(json.loads(metrics.read_text()))
    target = out or run_dir / "map.h5ad"
    tmp = _temporary_beside(target)
    adata.write_h5ad(tmp)
    tmp.replace(target)
    return target


def export_parquet(run_dir: Path, out: Path | None = None, features: bool = True) -> Path:
    """Write the run as a profile table (default ``<run dir>/profiles.parquet``): one row per point,
    metadata columns with the ``Metadata_`` prefix (added only where missing), the map as
    ``Metadata_map_x/y``, and the backbone's features as ``medviz_<i>`` columns, which pycytominer's
    ``aggregate(..., features=[...])`` takes."""
    table, coords, _ = run_table(run_dir)
    profile = table.rename(columns={c: c if c.startswith("Metadata_") else f"Metadata_{c}" for c in table.columns})
    profile["Metadata_map_x"] = coords[:, 0].astype(np.float32)
    profile["Metadata_map_y"] = coords[:, 1].astype(np.float32)
    backbone, _ = _outputs(run_dir)
    if features and backbone is not None:
        values = pd.DataFrame(backbone.astype(np.float32), columns=[f"medviz_{i}" for i in range(backbone.shape[1])])
        profile = pd.concat([profile.reset_index(drop=True), values], axis=1)
    target = out or run_dir / "profiles.parquet"
    tmp = _temporary_beside(target)
    profile.to_parquet(tmp, index=False)
    tmp.replace(target)
    return target


def _temporary_beside(target: Path) -> Path:
    """A temporary file next to ``target`` that no other export writes at the same time (two exports of
    one run at once each finish their own file; a killed one leaves a hidden ``.tmp``, never a half file)."""
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")
