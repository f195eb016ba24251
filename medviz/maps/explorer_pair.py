"""Two maps of the same images side by side, linked: ``medviz explore --run A --run B``.

One self-contained HTML page holding both runs' explorers; hovering a point in one map rings the
same image in the other, and a selection in one selects the same images in the other -- to compare
``invariance=none`` with ``invariance=batch``, or two augmentation sets. Points are matched by
identity (each image's path, else its dataset index where both runs read the same dataset), never
by position; images in one run only are said, and stay unlinked.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np

from medviz.errors import DataError
from medviz.text import json_for_script

log = logging.getLogger("medviz")

TEMPLATE = Path(__file__).with_name("explorer_pair.html")


def match_points(first: Sequence[str], second: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """For two maps' point identities: each first point's row in the second (-1: not there) and the reverse.

    Refused when an identity occurs twice in one map (it would not say which point is which) or when
    the maps share no image."""
    for keys, which in ((first, "first"), (second, "second")):
        seen: set[str] = set()
        for key in keys:
            if key in seen:
                raise DataError(
                    f"the {which} run names the image {key} twice: its points cannot be matched by identity"
                )
            seen.add(key)
    where = {key: row for row, key in enumerate(second)}
    first_to_second = np.array([where.get(key, -1) for key in first], dtype=np.int32)
    second_to_first = np.full(len(second), -1, dtype=np.int32)
    found = first_to_second >= 0
    second_to_first[first_to_second[found]] = np.flatnonzero(found)
    if not found.any():
        raise DataError(
            "the two runs share no image (matched by path, else by dataset index): compare two runs of the same data"
        )
    return first_to_second, second_to_first


def pair_note(first_to_second: np.ndarray, second_to_first: np.ndarray) -> str:
    """What the page says of the matching (and the log too, where not every image is in both)."""
    shared = int((first_to_second >= 0).sum())
    only = int((first_to_second < 0).sum()), int((second_to_first < 0).sum())
    if not any(only):
        return f"{shared} images in both maps, linked: hover or select in one, the same images light up in the other"
    note = (
        f"{shared} images in both maps are linked; {only[0]} only in the first and {only[1]} only in the second "
        "stay unlinked"
    )
    log.warning(note)
    return note


def pair_page(
    pages: Sequence[str], titles: Sequence[str], first_to_second: np.ndarray, second_to_first: np.ndarray
) -> str:
    """The pair page: two explorer pages (HTML text each) and how their points match."""
    data = {
        "pages": list(pages),
        "titles": [str(t) for t in titles],
        "firstToSecond": base64.b64encode(first_to_second.astype(np.int32).tobytes()).decode("ascii"),
        "secondToFirst": base64.b64encode(second_to_first.astype(np.int32).tobytes()).decode("ascii"),
        "note": pair_note(first_to_second, second_to_first),
    }
    parts = {"__TITLE__": escape(" | ".join(str(t) for t in titles)), "__DATA__": json_for_script(data)}
    return re.sub("__TITLE__|__DATA__", lambda found: parts[found.group()], TEMPLATE.read_text())
