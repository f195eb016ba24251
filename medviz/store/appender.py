"""Appending decoded images to a store: rows first, synced, then the index that says they exist."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medviz.store.index import Entry, StoreIndex
from medviz.store.rows import RowFile
from medviz.store.source_item import SourceItem

log = logging.getLogger("medviz")
_new = tuple.__new__  # builds an Entry without the generated __new__'s argument handling


def kind(shape: tuple[int, ...], dtype) -> str:
    """An image's kind as messages name it: its channel count and dtype."""
    return f"{shape[-1]} channel(s) of {np.dtype(dtype)}"


class Appender:
    """Appends decoded images to the image file and commits them to the index every ``commit_every``
    rows: first the rows are synced to disk, then the index says they exist."""

    def __init__(self, store_dir: Path, index: StoreIndex, commit_every: int) -> None:
        self.store_dir, self.index, self.commit_every = store_dir, index, commit_every
        # An emptied store takes the kind of its next images.
        # Kept as a tuple and a dtype: they are compared with every image (hundreds of thousands).
        self.shape, self.dtype = (
            (tuple(index.meta("shape")), np.dtype(index.meta("dtype"))) if index.rows else (None, None)
        )
        self.generation = index.generation + 1
        self.file_name = index.meta("file") or f"images-{self.generation}.bin"
        self.committed = index.rows
        self.written = self.added = self.unreadable = 0
        self.pending: list[Entry] = []
        self.images: list[np.ndarray] = []
        self.odd: dict[str, list[str]] = {}
        self.handle = None

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.close()

    def take(self, item: SourceItem, image: np.ndarray | None, error: str | None) -> None:
        """Queue one decoded item: an image (H, W, C), or a block (n, H, W, C) for an item with
        ``count`` n; None (with the reason) when it could not be read."""
        rows = max(item.count, 1)
        if image is None:
            log.warning(f"skipping unreadable {'block' if item.count else 'image'} {item.key}: {error}")
            self.pending.append(Entry(item.key, item.size, item.mtime_ns, -1, rows))
            self.unreadable += rows
            return
        block = image if item.count else image[None]
        if len(block) != rows:
            raise ValueError(f"{item.key}: the reader returned {len(block)} images for a block of {rows}")
        one = block.shape[1:]
        if self.shape is None:
            self.shape, self.dtype = one, block.dtype
        if one != self.shape or block.dtype != self.dtype:
            self.odd.setdefault(kind(one, block.dtype), []).append(item.key)
            return
        self.pending.append(Entry(item.key, item.size, item.mtime_ns, self.committed + self.written, rows))
        self.images.append(block)
        self.written += rows

    def take_block(self, items: Sequence[SourceItem], block: np.ndarray) -> None:
        """Queue the images (n, H, W, C) of ``items`` (one image each), decoded as one block."""
        if self.shape is not None and (block.shape[1:] != self.shape or block.dtype != self.dtype):
            for item, image in zip(items, block, strict=True):  # another kind than the store's
                self.take(item, image, None)
            return
        if self.shape is None:
            self.shape, self.dtype = block.shape[1:], block.dtype
        first = self.committed + self.written
        self.pending.extend(
            _new(Entry, (item.key, item.size, item.mtime_ns, first + i, 1)) for i, item in enumerate(items)
        )
        self.images.append(block)
        self.written += len(block)

    def write(self) -> None:
        """Append the images taken so far; commit once ``commit_every`` rows are waiting."""
        self._append_taken()
        if self.written >= self.commit_every:
            self.commit()

    def _append_taken(self) -> None:
        if self.images:
            if self.handle is None:
                rows = RowFile(self.store_dir / self.file_name, self.shape, self.dtype)
                self.handle = rows.open_for_append(self.committed)
            for block in self.images:  # into the handle's buffer one by one: no stacked copy
                RowFile.append(self.handle, block)
                self.added += len(block)
            self.images = []

    def commit(self) -> None:
        self._append_taken()
        if self.handle is not None:
            RowFile.sync(self.handle)
        rows = self.committed + self.written
        if self.shape is None:  # nothing readable yet: only the unreadable items are recorded
            self.index.commit(added=self.pending)
            self.pending = []
            return
        meta = {"rows": rows, "file": self.file_name, "shape": list(self.shape), "dtype": self.dtype.str}
        self.index.commit(added=self.pending, meta={**meta, "generation": self.generation})
        self.committed, self.written, self.pending = rows, 0, []
