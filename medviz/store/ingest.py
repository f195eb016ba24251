"""Building and updating a store: only what changed is read, in parallel, committed in chunks.

``ingest`` compares the source's items (key, size, mtime) with the store's index: items that are
gone or changed leave the store (their rows are compacted away, a byte copy, no decoding), new
and changed items are decoded in worker processes and appended. Every ``commit_every`` images
the appended rows are synced to disk and then committed to the index in one transaction, so an
ingest that is killed keeps what it committed and the next one carries on from there; rows past
the last commit are never read. One ingest at a time per store (a file lock); a second waits.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviz.bulk import paused_gc
from medviz.errors import DataError, MedvizError
from medviz.store.appender import Appender, kind
from medviz.store.index import Entry, StoreIndex
from medviz.store.leftovers import remove_leftovers
from medviz.store.lock import StoreLock
from medviz.store.rows import RowFile
from medviz.store.source_item import SourceItem
from medviz.store.workers import decoded_batches

log = logging.getLogger("medviz")


class IngestInterrupted(MedvizError, KeyboardInterrupt):
    """Ctrl-C during an ingest: what the store kept and how to go on. Still a KeyboardInterrupt, so
    whatever stops on Ctrl-C stops; entry points print its message instead of a traceback."""

    exit_code = 130  # as a shell reports a process ended by SIGINT

    def __init__(self, what: str, store_dir: Path, rows: int, committed: int, wanted: int) -> None:
        super().__init__(
            f"ingest of {what} stopped by Ctrl-C: the store keeps {rows} images ({committed} of the {wanted} new "
            f"ones were committed before the stop); run the same command again to read the rest ({store_dir})"
        )


@dataclass(frozen=True)
class IngestReport:
    """What one ingest did to the store at ``store``."""

    store: Path
    added: int
    removed: int
    kept: int
    unreadable: int
    seconds: float

    def __str__(self) -> str:
        unreadable = f", {self.unreadable} unreadable (skipped until they change)" if self.unreadable else ""
        return f"added {self.added}, removed {self.removed}, kept {self.kept}{unreadable} in {self.seconds:.1f} s"


def default_workers() -> int:
    """All the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _read_only_check(
    store_dir: Path, items: Sequence[SourceItem], what: str, by_name: bool, err: OSError, start: float
) -> IngestReport:
    """A store that cannot be written (a read-only file system, a shared cache): used as it is when it
    holds exactly ``items``; otherwise refused with what changed and where to build it instead."""
    if not (store_dir / "index.sqlite").is_file():
        raise DataError(
            f"cannot build the store of {what} in {store_dir} ({err.strerror}): set MEDVIZ_CACHE to a folder "
            "you can write (or free space there), and the next run builds it there"
        )
    with StoreIndex(store_dir / "index.sqlite", read_only=True) as index:
        stale, new_keys = _compare(index, items, by_name=by_name)
        rows = index.rows
    if stale or new_keys:
        example = sorted(new_keys or stale)[0]
        raise DataError(
            f"the store {store_dir} cannot be written ({err.strerror}), and {len(new_keys)} images of {what} are "
            f"new or changed and {len(stale)} gone since it was built (e.g. {example}): set MEDVIZ_CACHE to a "
            "folder you can write, or update the store with medviz ingest where it is writable"
        )
    log.info(f"store {store_dir} is read-only and up to date: used as it is")
    return IngestReport(store_dir, 0, 0, rows, 0, time.perf_counter() - start)


def ingest(
    store_dir: Path,
    items: Sequence[SourceItem],
    reader: Callable[[object], np.ndarray],
    what: str,
    workers: int | None = None,
    commit_every: int = 2048,
    stat_new: Callable[[SourceItem], SourceItem] | None = None,
    parallel_blocks: bool = False,
) -> IngestReport:
    """Bring the store at ``store_dir`` up to date with ``items`` (in the order new rows should take).

    Args:
        reader: payload -> image (H, W, C) in its stored dtype; a module-level function (or a
            ``functools.partial`` of one) so that worker processes can run it.
        what: the source, as messages name it.
        workers: decoding processes (default: every core).
        stat_new: for items listed by name only (size and mtime unknown): only keys are compared
            (a file changed in place goes unseen), and each new item gets its size and mtime from
            this function before it is read.
        parallel_blocks: items of ``count`` n (blocks) are decoded in the worker processes too (a
            field of view and its crops: decoding is the work); otherwise blocks (slices of an
            array file, a copy) are read one after another here.
    """
    start = time.perf_counter()
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
        lock = StoreLock(store_dir)
        lock.acquire()
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        report = _read_only_check(store_dir, items, what, stat_new is not None, err, start)
    else:
        try:
            if not (store_dir / "index.sqlite").is_file():
                # A new index numbers generations from 1 again: nothing of an earlier index's content may stay.
                remove_leftovers(store_dir, current_file=None, generation=None)
            report = _ingest_locked(
                store_dir, items, reader, what, workers, commit_every, stat_new, start, parallel_blocks
            )
        finally:
            lock.release()
    for reports in _RECORDING:
        reports.append(report)
    return report


def _ingest_locked(
    store_dir: Path,
    items: Sequence[SourceItem],
    reader: Callable,
    what: str,
    workers: int | None,
    commit_every: int,
    stat_new: Callable[[SourceItem], SourceItem] | None,
    start: float,
    parallel_blocks: bool = False,
) -> IngestReport:
    with StoreIndex(store_dir / "index.sqlite") as index:
        with paused_gc():
            stale, new_keys = _compare(index, items, by_name=stat_new is not None)
            fresh = [item for item in items if item.key in new_keys] if new_keys else []
        removed = _remove(store_dir, index, index.entries() if stale else {}, stale)
        if stat_new is not None:
            fresh = [stat_new(item) for item in fresh]
        before = index.rows
        try:
            added, unreadable = _add(
                store_dir, index, fresh, reader, what, workers or default_workers(), commit_every, parallel_blocks
            )
        except KeyboardInterrupt:
            raise IngestInterrupted(what, store_dir, index.rows, index.rows - before, len(fresh)) from None
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise DataError(
                f"no space left for the store of {what} in {store_dir} ({err.strerror}): {index.rows} images are "
                "kept; free space, or set MEDVIZ_CACHE to a folder on another disk, and run again to read the rest"
            ) from err
        kept = index.rows - added
        remove_leftovers(store_dir, current_file=index.meta("file"), generation=index.generation)
        return IngestReport(store_dir, added, removed, kept, unreadable, time.perf_counter() - start)


_RECORDING: list[list[IngestReport]] = []


@contextmanager
def recorded_ingests() -> Iterator[list[IngestReport]]:
    """The report of every ingest run inside the ``with`` block (``medviz ingest`` prints them)."""
    reports: list[IngestReport] = []
    _RECORDING.append(reports)
    try:
        yield reports
    finally:
        _RECORDING.remove(reports)


def _compare(index: StoreIndex, items: Sequence[SourceItem], by_name: bool) -> tuple[set[str], set[str]]:
    """(keys to remove: gone or changed, keys to read: new or changed), by (key, size, mtime) or by
    key alone. Hundreds of thousands of items: compared as sets, in C, not one by one."""
    if by_name:
        known, wanted = index.keys(), {item.key for item in items}
        return known - wanted, wanted - known
    known_versions = index.versions()
    wanted_versions = {(item.key, item.size, item.mtime_ns) for item in items}
    stale = {version[0] for version in known_versions - wanted_versions}
    return stale, {version[0] for version in wanted_versions - known_versions}


def _remove(store_dir: Path, index: StoreIndex, known: dict[str, Entry], keys: set[str]) -> int:
    """Drop ``keys`` from the store; their rows are compacted away in a new image file."""
    if not keys:
        return 0
    gone = [known[key] for key in keys if known[key].row >= 0]
    if not gone:
        index.commit(removed=keys)
        return 0
    rows = index.rows
    gone_rows = np.concatenate([np.arange(e.row, e.row + e.count, dtype=np.int64) for e in gone])
    keep = np.setdiff1d(np.arange(rows, dtype=np.int64), gone_rows)
    generation = index.generation + 1
    old = RowFile(store_dir / index.meta("file"), tuple(index.meta("shape")), np.dtype(index.meta("dtype")))
    name = f"images-{generation}.bin"
    old.compacted(rows, keep, store_dir / name)
    moved = {int(old_row): new_row for new_row, old_row in enumerate(keep) if old_row != new_row}
    # The new file is complete before the index points at it; the old one goes after.
    index.commit(removed=keys, moved=moved, meta={"rows": len(keep), "file": name, "generation": generation})
    old.path.unlink(missing_ok=True)
    return len(gone_rows)


def _add(
    store_dir: Path,
    index: StoreIndex,
    items: list[SourceItem],
    reader: Callable[[object], np.ndarray],
    what: str,
    workers: int,
    commit_every: int,
    parallel_blocks: bool = False,
) -> tuple[int, int]:
    """Decode and append ``items``; returns (added, unreadable). Images of another kind than the
    store's are not added and are reported together at the end."""
    from tqdm.auto import tqdm

    if not items:
        return 0, 0
    payloads = [item.payload for item in items]
    images = sum(max(item.count, 1) for item in items)
    blocks = items[0].count > 0
    fields = blocks and parallel_blocks
    progress = tqdm(
        total=images,
        desc=f"{'cutting' if fields else 'ingesting'} {what}",
        unit="crop" if fields else "img",
        disable=images < 500,
    )
    # Blocks of arrays are read one after another in this process (reading them is a copy, and their
    # readers keep an open file between blocks), and each is committed when written. Fields of view
    # are decoded in the workers, one field per task, a few in flight (each is many crops).
    per_batch, commit_every = (
        (1, 1) if blocks and not fields else (1 if fields else min(64, commit_every), commit_every)
    )
    parallel = (
        {"parallel_from": 2, "in_flight_per_worker": FIELDS_IN_FLIGHT_PER_WORKER, "block_rows": _slot_rows(items)}
        if fields
        else {}
    )
    with Appender(store_dir, index, commit_every) as appender, progress:
        position = 0
        stored_kind = None if appender.shape is None else (appender.shape, appender.dtype)
        decoding = 1 if blocks and not fields else workers
        for batch in decoded_batches(reader, payloads, decoding, per_batch, stored_kind, **parallel):
            taken = items[position : position + batch.size]
            if batch.all_stacked and not blocks:
                appender.take_block(taken, batch.block)
            else:
                for item, (image, error) in zip(taken, batch.decoded(), strict=True):
                    appender.take(item, image, error)
            progress.update(sum(max(item.count, 1) for item in taken))
            position += batch.size
            if fields:
                progress.set_postfix_str(f"{position} of {len(items)} fields", refresh=False)
            appender.write()  # before the next batch: a batch's block may be a slot that is then reused
        appender.commit()
    if appender.odd:
        _refuse_mixed(what, index.rows, kind(tuple(appender.shape), appender.dtype), appender.odd)
    if appender.unreadable:
        log.warning(f"{what}: skipped {appender.unreadable} unreadable of {images} new images (see warnings above)")
    return appender.added, appender.unreadable


#: Fields each worker may have cut or in hand before the store takes them: enough to keep cutting
#: while the store's writes wait on the disk, few enough that memory stays bounded (a slot holds one
#: field's crops, at most ``workers.BLOCK_SLOT_BYTES``).
FIELDS_IN_FLIGHT_PER_WORKER = 2


def _slot_rows(items: Sequence[SourceItem]) -> int:
    """Images per shared slot for blocks: the largest block's count (the workers cap it by size)."""
    return max(1, max(item.count for item in items))


def _refuse_mixed(what: str, stored: int, stored_kind: str, odd: dict[str, list[str]]) -> None:
    parts = [f"{stored} with {stored_kind} (in the store)"]
    by_count = sorted(odd.items(), key=lambda kind_keys: -len(kind_keys[1]))
    parts += [f"{len(keys)} with {kind} (e.g. {keys[0]})" for kind, keys in by_count]
    raise DataError(
        f"{what}: the images disagree: {'; '.join(parts)}. A dataset needs one channel count and bit depth: "
        "convert or move the odd ones out"
    )
