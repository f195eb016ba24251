"""What a source hands the store: one item per image file or array block, with the version that identifies it."""

from __future__ import annotations

from typing import NamedTuple


class SourceItem(NamedTuple):  # a tuple: a source lists hundreds of thousands
    """One image of a source, or one block of an array: its key in the store, the size and mtime
    that identify its version, what the reader needs to decode it (a path, one path per channel,
    or where the block lies), and ``count``: 0 for one image (the reader returns (H, W, C)), n for a
    block of n images (the reader returns (n, H, W, C))."""

    key: str
    size: int
    mtime_ns: int
    payload: object
    count: int = 0
