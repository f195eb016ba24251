"""Atomic on-disk caches of decoded, resized datasets.

A cache is one ``.npz`` (or a ``.npy`` for arrays meant to be memory-mapped) written to a
temporary name and renamed into place, so a crash or Ctrl-C while writing never leaves a
half-written cache that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from medviz.data.errors import DataError


def default_cache_dir() -> Path:
    """``$MEDVIZ_CACHE`` or ``~/.cache/medviz``."""
    return Path(os.environ.get("MEDVIZ_CACHE", Path.home() / ".cache" / "medviz"))


def cache_key(**settings) -> str:
    """A short stable hash of the settings that determine a cache's content."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        tmp.replace(path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise DataError(f"could not write the cache {path}: {err}. Free disk space or set MEDVIZ_CACHE.") from err
    return path


def load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays of a cache, or None when it is missing or unreadable (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in keys}
    except (OSError, ValueError, KeyError, EOFError):
        return None
