"""Files a store no longer needs: row files its index does not point to, and statistics kept for
content it no longer holds -- removed, so statistics never outlive the content they describe."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("medviz")


def remove_leftovers(store_dir: Path, current_file: str | None, generation: int | None) -> None:
    """Remove row files the index does not point to and statistics kept for other generations than
    ``generation`` (all of both when None): statistics never outlive the content they describe."""
    removed = []
    for path in store_dir.glob("images-*.bin"):
        if path.name != current_file:
            path.unlink(missing_ok=True)
            removed.append(path.name)
    for path in store_dir.glob("generation-*.json"):
        number = path.name.removeprefix("generation-").split(".", 1)[0]
        if generation is None or number != str(generation):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    if removed:
        log.info(f"store {store_dir}: removed {len(removed)} file(s) of content it no longer holds ({removed[0]}, ...)")
