"""Reading a store: its committed rows as a memory map, and which item each row is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviz.bulk import paused_gc
from medviz.errors import DataError
from medviz.store.index import Entry, StoreIndex
from medviz.store.rows import RowFile


@dataclass(frozen=True)
class StoredImages:
    """A store's content.

    Attributes:
        images: (N, H, W, C) in the stored dtype, a read-only memory map (nothing is loaded).
        items: the readable items in row order (an image file is one row, an array block ``count`` rows).
        unreadable: keys of items that could not be read (skipped until they change).
        generation: the content's generation; statistics kept for another are not used.
        path: the store's folder.
    """

    images: np.ndarray
    items: list[Entry]
    unreadable: list[str]
    generation: int
    path: Path

    @property
    def keys(self) -> list[str]:
        """The key of each item, in row order (one per row where every item is one image)."""
        return [item.key for item in self.items]


def open_store(store_dir: Path) -> StoredImages:
    """The committed content of the store at ``store_dir``."""
    if not (store_dir / "index.sqlite").is_file():
        raise DataError(f"{store_dir} is not a medviz store (no index.sqlite); build it with medviz ingest")
    with StoreIndex(store_dir / "index.sqlite", read_only=True) as index:
        rows = index.rows
        with paused_gc():
            items = index.readable_in_row_order()
        unreadable = index.unreadable_keys()
        generation = index.generation
        file, shape, dtype = index.meta("file"), index.meta("shape"), index.meta("dtype")
    if rows == 0:
        return StoredImages(np.empty((0, 1, 1, 1), np.uint8), [], unreadable, generation, store_dir)
    images = RowFile(store_dir / file, tuple(shape), np.dtype(dtype))
    indexed = sum(item.count for item in items)
    if indexed != rows or images.path.stat().st_size < rows * images.row_bytes:
        raise DataError(
            f"the store {store_dir} is damaged ({rows} rows committed, {indexed} indexed): delete the folder "
            "and the next run (or medviz ingest) builds it again"
        )
    return StoredImages(images.read(rows), items, unreadable, generation, store_dir)
