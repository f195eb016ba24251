"""Array sources (MedMNIST, PCam, CIFAR-10, your own .npz/.npy) in the store, block by block.

A source is a list of :class:`ArrayPart` s in its order (MedMNIST: train, val, test images). Each
part is cut into blocks of about ``BLOCK_BYTES``; a block is one store item, keyed
``<part>:<first row>`` and versioned by the part's file size and mtime, so a changed file is read
again and an unchanged one never is. Blocks are read one after another in this process (reading
is a copy: no decoding to spread over cores), so memory holds one block whatever the source's size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviz.errors import DataError
from medviz.store.ingest import ingest
from medviz.store.location import cache_key, default_cache_dir
from medviz.store.read import open_store
from medviz.store.source_item import SourceItem

log = logging.getLogger("medviz")

#: About this many bytes of source rows per block (one store item, one commit of the index).
BLOCK_BYTES = 32 * 2**20
#: Bumped when what an array store holds changes, so older stores are not trusted.
ARRAY_STORE_VERSION = 1


@dataclass(frozen=True)
class ArrayPart:
    """One array of a source, e.g. MedMNIST's ``train_images``.

    Attributes:
        name: as keys and messages say it.
        rows: its number of images.
        row_bytes: bytes of one image as read (sizes the blocks).
        version: (size, mtime_ns) of the file(s) it comes from: when they change it is read again.
    """

    name: str
    rows: int
    row_bytes: int
    version: tuple[int, int]


def file_version(*files: Path) -> tuple[int, int]:
    """(total size, latest mtime_ns) of ``files``: what tells a changed source from the stored one."""
    stats = [f.stat() for f in files]
    return sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats)


def array_store_dir(kind: str, name: str, cache_dir: str | None = None, **settings) -> Path:
    """Where the store of one array source lives: one per source file(s) and reading settings."""
    key = cache_key(kind=kind, version=ARRAY_STORE_VERSION, **settings)
    return Path(cache_dir or default_cache_dir()) / "stores" / f"{kind}-{name}-{key}"


def block_items(parts: Sequence[ArrayPart], block_bytes: int | None = None) -> list[SourceItem]:
    """One store item per block of each part (``block_bytes``, default ``BLOCK_BYTES``); the payload
    is (part index, start, stop)."""
    block_bytes = block_bytes or BLOCK_BYTES
    items = []
    for index, part in enumerate(parts):
        step = max(1, block_bytes // max(part.row_bytes, 1))
        for start in range(0, part.rows, step):
            stop = min(start + step, part.rows)
            items.append(SourceItem(f"{part.name}:{start}", *part.version, (index, start, stop), stop - start))
    return items


def store_arrays(
    store_dir: Path,
    parts: Sequence[ArrayPart],
    read_block: Callable[[tuple[int, int, int]], np.ndarray],
    what: str,
    block_bytes: int | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Bring the store of an array source up to date and open it.

    Args:
        read_block: (part index, start, stop) -> the images (stop - start, H, W, C) as stored.
        what: the source, as messages name it.

    Returns:
        images: (N, H, W, C), a read-only memory map of the store.
        source_rows: (N,) int64, each stored image's row in the source's order (parts one after
            another): labels and splits of the source are ``labels[source_rows]``.
        generation: the store's content generation (statistics are kept per generation).
    """
    report = ingest(store_dir, block_items(parts, block_bytes), read_block, what, workers=1)
    if report.added or report.removed:
        log.info(f"{what}: store {store_dir}: {report}")
    stored = open_store(store_dir)
    offsets = dict(zip((p.name for p in parts), np.cumsum([0] + [p.rows for p in parts]).tolist(), strict=False))
    total = sum(p.rows for p in parts)
    source_rows = np.concatenate(
        [np.empty(0, np.int64)]
        + [
            offsets[item.key.rsplit(":", 1)[0]] + int(item.key.rsplit(":", 1)[1]) + np.arange(item.count)
            for item in stored.items
        ]
    )
    if len(source_rows) != total or stored.unreadable:
        raise DataError(
            f"{what}: the store {store_dir} holds {len(source_rows)} of the source's {total} images; delete the "
            "folder and the next run builds it again"
        )
    return stored.images, source_rows, stored.generation
