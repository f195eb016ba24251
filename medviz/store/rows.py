"""The store's image file: equally sized rows (H, W, C) in the stored dtype, one after another.

A plain binary file (no header: the shape and dtype live in the index), so that appending an
image is one write and reading the dataset is one ``np.memmap`` -- no copy, whatever its size.
Only the first ``rows`` rows that the index has committed count; anything after them was written
by an ingest that was killed before its commit and is cut off when the file is next opened for
writing.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import numpy as np

from medviz.errors import DataError


class RowFile:
    """Append-only rows of one shape and dtype, read back as a memory map.

    Args:
        path: the file (created when missing).
        shape: (H, W, C) of one row.
        dtype: the stored dtype.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path = path
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.shape)) * self.dtype.itemsize

    def check_holds(self, rows: int) -> int:
        """The bytes of ``rows`` rows; a file shorter than that (cut short, replaced, lost) is damage,
        refused with the fix -- never padded, since zeros would pass for committed images."""
        needed = rows * self.row_bytes
        size = self.path.stat().st_size if self.path.exists() else 0
        if size < needed:
            raise DataError(
                f"the store {self.path.parent} is damaged: {self.path.name} holds {size // self.row_bytes} of the "
                f"{rows} rows its index has committed; delete the folder {self.path.parent} and the next run "
                "(or medviz ingest) builds it again"
            )
        return needed

    def open_for_append(self, committed: int):
        """A binary handle positioned after the ``committed`` rows; anything after them is cut off."""
        # The caller owns the handle (it stays open for the whole ingest).
        # A large buffer: images arrive one by one (a few kB each) and leave in MB-sized writes.
        needed = self.check_holds(committed)
        handle = open(self.path, "r+b" if self.path.exists() else "w+b", buffering=4 * 2**20)  # noqa: SIM115
        handle.truncate(needed)  # rows written after the last commit: never committed, never read
        handle.seek(committed * self.row_bytes)
        return handle

    @staticmethod
    def append(handle, images: np.ndarray) -> None:
        """Write images (n, H, W, C) at the handle's position."""
        handle.write(memoryview(np.ascontiguousarray(images)).cast("B"))  # no copy of a contiguous block

    @staticmethod
    def sync(handle) -> None:
        """Make the written rows durable before the index commits them."""
        handle.flush()
        os.fsync(handle.fileno())

    def read(self, rows: int) -> np.ndarray:
        """The first ``rows`` rows as a read-only memory map (N, H, W, C); an empty array for none."""
        if rows == 0:
            return np.empty((0, *self.shape), self.dtype)
        self.check_holds(rows)
        images = np.memmap(self.path, dtype=self.dtype, mode="r", shape=(rows, *self.shape))
        # Rows are read by offset through this descriptor (medviz.store.gather), opened now: a run keeps
        # reading the content it started with even when an ingest of the same folder compacts the
        # store and removes this file by name meanwhile.
        fd = os.open(self.path, os.O_RDONLY)
        weakref.finalize(images, os.close, fd)
        images.medviz_fd = fd  # type: ignore[attr-defined]
        return images

    def compacted(self, rows: int, keep: np.ndarray, target: Path, chunk: int = 4096) -> RowFile:
        """A new file at ``target`` holding only the rows ``keep`` (ascending) of the first ``rows``, in order.

        Copied in chunks, so memory stays small whatever the store's size.
        """
        source = self.read(rows)
        out = RowFile(target, self.shape, self.dtype)
        with open(target, "w+b") as handle:
            for start in range(0, len(keep), chunk):
                self.append(handle, source[keep[start : start + chunk]])
            self.sync(handle)
        return out
