"""What a finished run leaves in its folder: embedding.npz, features.npz, metrics.json, metadata, points."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from medviz.data.image_arrays import ImageArrays
from medviz.errors import DataError
from medviz.text import spreadsheet_cell


def save_embedding(run_dir: Path, coords: np.ndarray, data: ImageArrays, indices: np.ndarray) -> Path:
    """``embedding.npz``: ``embedding`` float32 (N, 2), ``labels`` int64 (N,), ``index`` int64 (N,),
    ``class_names`` (C,) -- rows in dataset order, so ``index[i] == i`` -- and, for data read from
    files, ``files`` (N,): which image each point is, so the map tools match points to images by
    identity, not by position (a store's row order follows its history)."""
    path = run_dir / "embedding.npz"
    identity = {} if data.files is None else {"files": np.array([str(f) for f in data.files])}
    np.savez(
        path,
        embedding=coords.astype(np.float32),
        labels=data.labels,
        index=indices.astype(np.int64),
        class_names=np.array(data.class_names),
        **identity,
    )
    return path


def save_features(run_dir: Path, features: np.ndarray, data: ImageArrays, indices: np.ndarray) -> Path:
    """``features.npz``: ``features`` float32 (N, D) backbone features, ``labels``, ``index`` -- dataset order."""
    path = run_dir / "features.npz"
    np.savez(path, features=features.astype(np.float32), labels=data.labels, index=indices.astype(np.int64))
    return path


#: A map method's other outputs: its backbone features and its high-dimensional output (t-SimCNE's 128-D).
OUTPUTS_FILE = "outputs.npz"


def save_outputs(run_dir: Path, result: dict[str, np.ndarray], data: ImageArrays) -> Path:
    """``outputs.npz``: ``features`` float32 (N, D) backbone features, ``high`` float32 (N, 128) when
    the method has it, ``index`` -- dataset order, row for row with ``embedding.npz`` (export reads it).
    SimCLR/BYOL keep their features in ``features.npz`` (linear evaluation, paper Table 5)."""
    path = run_dir / OUTPUTS_FILE
    arrays = {"features": result["features"].astype(np.float32), "index": result["index"].astype(np.int64)}
    if "high" in result:
        arrays["high"] = result["high"].astype(np.float32)
    np.savez(path, **arrays)
    return path


def write_metrics(run_dir: Path, metrics: dict) -> Path:
    """``metrics.json``, replaced atomically: a crash never leaves a half-written file."""
    path = run_dir / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


#: The metadata a run trained on, row for row with its points (typed: categories stay categories).
METADATA_FILE = "metadata.parquet"
#: Each point's coordinates, class, key and metadata, for a person (any spreadsheet opens it).
POINTS_FILE = "points.csv"


def save_metadata(run_dir: Path, data: ImageArrays) -> Path | None:
    """``metadata.parquet``: ``data.metadata`` in point order (the map tools and export read this copy,
    never the dataset's current state); nothing when the data have no metadata. Written atomically."""
    if data.metadata is None:
        return None
    path = run_dir / METADATA_FILE
    tmp = path.with_suffix(".parquet.tmp")
    data.metadata.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def load_metadata(run_dir: Path, points: int) -> pd.DataFrame | None:
    """The run's ``metadata.parquet`` (``points`` rows), or None when it has none; a table of another
    length is refused (it is not this map's)."""
    path = run_dir / METADATA_FILE
    if not path.is_file():
        return None
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise DataError(f"{path} cannot be read ({err}); train the run again to rebuild it") from err
    if len(table) != points:
        raise DataError(f"{path} has {len(table)} rows but the map has {points} points: it is not this run's table")
    return table


def save_points_table(run_dir: Path, coords: np.ndarray, data: ImageArrays) -> Path:
    """``points.csv``: one row per point -- ``x``, ``y``, ``label`` (class name, empty when unlabelled),
    the image's key (``path`` relative to the dataset, or ``index``) and every metadata column.
    Text cells that a spreadsheet would run as a formula are neutralised (:func:`spreadsheet_cell`)."""
    table = pd.DataFrame({"x": coords[:, 0].astype(np.float32), "y": coords[:, 1].astype(np.float32)})
    names = np.array([*data.class_names, ""], dtype=object)
    table["label"] = names[np.where(data.labels >= 0, data.labels, len(data.class_names))]
    if data.metadata is not None:
        extra = data.metadata.drop(columns=[c for c in ("x", "y", "label") if c in data.metadata.columns])
        table = pd.concat([table, extra.reset_index(drop=True)], axis=1)
    else:
        table["index"] = np.arange(len(data))
    return write_spreadsheet_csv(table, run_dir / POINTS_FILE)


def write_spreadsheet_csv(table: pd.DataFrame, path: Path) -> Path:
    """``table`` as a CSV a spreadsheet opens safely: text cells it would run as a formula are
    neutralised (:func:`spreadsheet_cell`); written beside and renamed, so a reader never sees half."""
    table = table.copy()
    for column in table.columns:
        if not pd.api.types.is_numeric_dtype(table[column]):
            table[column] = table[column].astype(object).map(spreadsheet_cell, na_action="ignore")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    table.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL)
    tmp.replace(path)
    return path


def record_metadata(run_dir: Path, data: ImageArrays, resuming: bool) -> None:
    """Keep the metadata a run trains on; a resumed run must see the same rows in the same order
    (a table edited since the run began is refused, naming what differs)."""
    if resuming and (run_dir / METADATA_FILE).is_file():
        kept = load_metadata(run_dir, len(data)) if data.metadata is not None else None
        if data.metadata is None or not _same_table(kept, data.metadata):
            raise DataError(
                f"{run_dir / METADATA_FILE}: the metadata this run began with differ from the dataset's now "
                "(a table edited, rows reordered, or metadata settings changed); resume with the same data, "
                "or start a new run"
            )
        return
    save_metadata(run_dir, data)


def _same_table(a: pd.DataFrame | None, b: pd.DataFrame) -> bool:
    if a is None or list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    return all(a[c].astype(str).tolist() == b[c].astype(str).tolist() for c in a.columns)
