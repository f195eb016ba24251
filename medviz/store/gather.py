"""Reading rows of a memory-mapped dataset with positional reads, so its pages never count as ours.

Every page of a memory map that a process touches stays in that process's resident memory (as
file-backed pages) until the kernel reclaims it: an epoch over a 40 GB store through the map would
show 40 GB of RSS in each loader worker. Reading the same rows with ``pread`` into a buffer of our
own keeps a process's memory at the size of one batch; the kernel's page cache still serves
repeated reads. Arrays that are not a whole memory-mapped file (in-memory arrays, views) are
indexed as usual.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


def streamable(images: np.ndarray) -> bool:
    """Whether ``images`` is a whole memory-mapped file region (not a view), so rows can be read by offset."""
    return isinstance(images, np.memmap) and isinstance(images.base, mmap.mmap) and images.flags.c_contiguous


def _row_bytes(images: np.ndarray) -> int:
    return int(np.prod(images.shape[1:])) * images.dtype.itemsize


def gather(images: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``images[indices]`` (n, ...) in the requested order; read by offset for a memory-mapped file.

    Indices are read in ascending order (forward reads), consecutive ones in one read each.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if not streamable(images):
        return np.asarray(images[indices])
    if len(indices) and (indices.min() < 0 or indices.max() >= len(images)):
        raise IndexError(f"row indices outside 0..{len(images) - 1}")
    order = np.argsort(indices, kind="stable")
    ordered = indices[order]
    out = np.empty((len(indices), *images.shape[1:]), images.dtype)
    sorted_rows = np.empty_like(out)
    row_bytes = _row_bytes(images)
    # Runs of consecutive rows: one read each.
    breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
    with _descriptor(images) as fd:
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(ordered)], strict=True):
            _read_exactly(fd, sorted_rows[start:stop], images.offset + int(ordered[start]) * row_bytes)
    out[order] = sorted_rows
    return out


def blocks(images: np.ndarray, rows: int = 8192) -> Iterator[np.ndarray]:
    """Consecutive blocks of at most ``rows`` rows, in order (a read buffer of our own for a memory map)."""
    if not streamable(images):
        for start in range(0, len(images), rows):
            yield images[start : start + rows]
        return
    row_bytes = _row_bytes(images)
    with _descriptor(images) as fd:
        for start in range(0, len(images), rows):
            block = np.empty((min(rows, len(images) - start), *images.shape[1:]), images.dtype)
            _read_exactly(fd, block, images.offset + start * row_bytes)
            yield block


@contextmanager
def _descriptor(images: np.ndarray) -> Iterator[int]:
    """A descriptor of the memory map's file: the one opened with it (a store's rows, which then
    stay readable after the file is replaced by name), else the file opened by name for this read."""
    kept = getattr(images, "medviz_fd", None)
    if kept is not None:
        yield kept
        return
    with open(images.filename, "rb") as handle:
        yield handle.fileno()


def _read_exactly(fd: int, target: np.ndarray, offset: int) -> None:
    view = memoryview(target.reshape(-1).view(np.uint8))
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            raise OSError(f"the image file ended {len(view) - done} bytes early at offset {offset + done}")
        done += got
