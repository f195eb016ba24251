"""Where decoded datasets are kept (their stores, :mod:`medviz.store`) and the keys that name them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$MEDVIZ_CACHE`` or ``~/.cache/medviz``."""
    return Path(os.environ.get("MEDVIZ_CACHE", Path.home() / ".cache" / "medviz"))


def cache_key(**settings) -> str:
    """A short stable hash of the settings that determine a cache's content."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
