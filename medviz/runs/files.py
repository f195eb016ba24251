"""The arrays a finished run leaves in its folder: embedding.npz, features.npz and metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medviz.data.image_arrays import ImageArrays


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


def write_metrics(run_dir: Path, metrics: dict) -> Path:
    """``metrics.json``, replaced atomically: a crash never leaves a half-written file."""
    path = run_dir / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path
