"""Statistics of a stored dataset kept beside its store, so they are computed once per content.

A store's content has a generation (:mod:`medviz.store`); a value computed from it -- dataset
percentiles, the border colour -- is written as a small JSON file named after that generation, so
it is never used for other content, and a later run reads it instead of passing over every image.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("medviz")


def kept_beside(cache_file: Path | None, name: str, compute: Callable[[], dict]) -> dict:
    """``compute()``, kept as ``<cache_file>.<name>.json`` (a JSON object of plain values).

    Without a ``cache_file`` (data that is not stored) it is computed every time; a value that cannot
    be written (a read-only cache) is used all the same, with a warning.
    """
    if cache_file is None:
        return compute()
    side = cache_file.with_name(f"{cache_file.name}.{name}.json")
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError):
        pass  # not computed yet (or unreadable): compute and keep it
    value = compute()
    tmp = side.with_name(side.name + ".partial")
    try:
        tmp.write_text(json.dumps(value))
        tmp.replace(side)
    except OSError as err:  # a read-only cache still trains; the value is computed again next time
        log.warning(f"could not keep {name} beside {cache_file}: {err}")
    return value
