"""Decoding in worker processes: batches of items in, arrays (or the reason they failed) out, in order.

Workers are started with ``spawn`` (a clean interpreter: safe whatever threads the parent runs,
PyTorch's included) and import only the readers (numpy, PIL, tifffile). Their log lines -- an
alpha channel dropped, a dtype converted -- are relayed to the parent's ``medviz`` logger, so
nothing a worker does to an image goes unsaid. Ctrl-C is the parent's to handle: workers ignore
it and the parent stops them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from logging.handlers import QueueHandler, QueueListener

import numpy as np
from PIL import UnidentifiedImageError

from medviz.store.slots import Slot, SlotFile, batch_for

#: Errors that make one file unreadable (it is skipped and reported); anything else stops the ingest.
UNREADABLE = (OSError, UnidentifiedImageError, ValueError)

#: Fewer new items than this are decoded in the calling process.
PARALLEL_FROM = 4096

#: Batches each worker may have decoded or in hand before the caller takes them: enough that the
#: workers keep decoding while the caller syncs a commit to disk (a few hundred ms), few enough
#: that memory stays small (8 batches of 64 images of 64 px: 6 MB per worker).
IN_FLIGHT_PER_WORKER = 8

#: A slot for blocks (a field's crops) holds at most this many bytes; a larger block comes back through
#: the pipe (slower, same result), so slots stay small whatever one field holds.
BLOCK_SLOT_BYTES = 256 * 2**20

Decoded = tuple[np.ndarray | None, str | None]  # the image, or None and why it could not be read


@dataclass
class DecodedBatch:
    """A batch of decoded items: the images of the expected kind in order in ``block`` (in a worker's
    shared slot, or stacked here), images of another kind one by one, and why others failed.

    Attributes:
        size: the batch's item count.
        block: (k, H, W, C): the items not in ``others`` or ``errors``, in order (None: none yet).
        stacked: k, the images in the block (counted where the block is a slot the caller opens).
        others: position in the batch -> an image of another kind.
        errors: position in the batch -> why that item could not be read.
    """

    size: int
    block: np.ndarray | None = None
    stacked: int = 0
    others: dict[int, np.ndarray] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    rows: int = 0  # a batch of one block item (a field's crops) in a slot: its crops, the block's rows

    @property
    def all_stacked(self) -> bool:
        return self.stacked == self.size

    def decoded(self) -> Iterator[Decoded]:
        """(image, None) or (None, why) for each item, in order."""
        if self.rows:  # one block item, whole in the block
            yield self.block, None
            return
        row = 0
        for position in range(self.size):
            if position in self.errors:
                yield None, self.errors[position]
            elif position in self.others:
                yield self.others[position], None
            else:
                yield self.block[row], None
                row += 1


def read_batch(
    reader: Callable[[object], np.ndarray], payloads: Sequence[object], slot: Slot | None = None
) -> DecodedBatch:
    """``reader(payload)`` for each payload; an unreadable one gives its error. Images of the first
    one's kind (of the slot's, given a ``slot``) go into one block: the slot, else one stacked array."""
    batch = DecodedBatch(len(payloads))
    target = slot.view() if slot is not None else None
    stacked: list[np.ndarray] = []
    for position, payload in enumerate(payloads):
        try:
            image = reader(payload)
        except UNREADABLE as err:
            batch.errors[position] = f"{type(err).__name__}: {err}"
            continue
        if target is not None and image.shape == target.shape[1:] and image.dtype == target.dtype:
            target[batch.stacked] = image
            batch.stacked += 1
        elif target is None and (not stacked or (image.shape == stacked[0].shape and image.dtype == stacked[0].dtype)):
            stacked.append(image)
            batch.stacked += 1
        else:
            batch.others[position] = image
    if stacked:
        batch.block = np.stack(stacked)
    return batch


def read_block_into(reader: Callable[[object], np.ndarray], payload: object, slot: Slot) -> DecodedBatch:
    """``reader(payload)`` for one item that decodes to a block (K, H, W, C): written into ``slot``
    when it fits (its first K rows; only K comes back), else sent back whole. A reader with a
    ``writes_into(payload, slot)`` attribute writes the block into the slot itself and returns K
    (or the block, when it does not fit), saving a copy of every image."""
    batch = DecodedBatch(1)
    target = slot.view()
    writes_into = getattr(reader, "writes_into", None)  # a reader that can write into the slot itself
    try:
        block = writes_into(payload, target) if writes_into is not None else reader(payload)
    except UNREADABLE as err:
        batch.errors[0] = f"{type(err).__name__}: {err}"
        return batch
    if isinstance(block, int):  # written into the slot: its first rows
        batch.stacked, batch.rows = 1, block
        return batch
    if block.shape[1:] == target.shape[1:] and block.dtype == target.dtype and 0 < len(block) <= len(target):
        target[: len(block)] = block
        batch.stacked, batch.rows = 1, len(block)
    else:
        batch.others[0] = block
    return batch


class _Relay(logging.Handler):
    """Hands a worker's log record to the parent's logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


def _start_worker(queue, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(parent)
    logger = logging.getLogger("medviz")
    logger.handlers = [QueueHandler(queue)]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _exit_with_parent(parent: int) -> None:
    """End this worker when the ingest that started it (``parent``, its pid) dies -- SIGKILL, a
    scheduler's SIGTERM: the kernel sends it SIGKILL (Linux), and a watchdog thread checks elsewhere.
    ``parent`` is passed in, not read here: the ingest may have died while this worker was starting."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the watchdog alone

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="medviz-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the death signal was asked for
        os._exit(1)


def _first_kind(
    reader: Callable[[object], np.ndarray], payloads: Sequence[object], tries: int = 16
) -> tuple[tuple[int, ...], np.dtype] | None:
    """(shape, dtype) of the first readable of the first ``tries`` items (None: none could be read)."""
    for payload in payloads[:tries]:
        try:
            image = reader(payload)
        except UNREADABLE:
            continue
        return image.shape, image.dtype
    return None


def decoded_batches(
    reader: Callable[[object], np.ndarray],
    payloads: Sequence[object],
    workers: int,
    batch: int = 64,
    kind: tuple[tuple[int, ...], np.dtype] | None = None,
    parallel_from: int | None = None,
    shared_slots: bool = True,
    in_flight_per_worker: int | None = None,
    block_rows: int = 0,
) -> Iterator[DecodedBatch]:
    """Decoded batches of ``payloads``, in order; in ``workers`` processes when that pays.

    With worker processes, the workers decode into shared slots sized to ``kind`` (shape (H, W, C),
    dtype: the store's; when None, the first readable item's; :mod:`medviz.store.slots`); a yielded
    batch's ``block`` is then a view of its slot, valid until the next batch is asked for. At most
    ``IN_FLIGHT_PER_WORKER`` batches per worker are in flight, so memory stays bounded whatever the
    number of items. With one worker, or fewer than ``PARALLEL_FROM`` items (starting the workers
    costs about as much as decoding a few thousand small images here), everything is read in this
    process. Items that decode to blocks of many images (a field's crops) are taken one per batch
    (``batch=1``) with ``block_rows`` > 0: each slot holds that many images, a block that fits is
    written there (a block's images all come back through the pipe otherwise: 9 MB for a field of
    100 crops of 96 px, 5 channels, 16-bit, which cost more than cutting them); they use fewer items
    in flight and a lower ``parallel_from`` (one field is worth starting the workers for).
    """
    # The module's constants are read here, not bound as defaults, so a test may lower them.
    parallel_from = PARALLEL_FROM if parallel_from is None else parallel_from
    in_flight_per_worker = IN_FLIGHT_PER_WORKER if in_flight_per_worker is None else in_flight_per_worker
    if workers <= 1 or len(payloads) < parallel_from:
        for start in range(0, len(payloads), batch):
            yield read_batch(reader, payloads[start : start + batch])
        return
    kind = (kind or _first_kind(reader, payloads)) if shared_slots else None
    if kind is not None and block_rows:
        kind = (kind[0][1:], kind[1]) if len(kind[0]) == 4 else kind  # a block's shape -> one image's
        row_bytes = int(np.prod(kind[0])) * np.dtype(kind[1]).itemsize
        block_rows = max(1, min(block_rows, BLOCK_SLOT_BYTES // row_bytes))  # larger blocks: through the pipe
        batch = 1
    elif kind is not None:
        batch = batch_for(*kind, batch)
    batches = (payloads[start : start + batch] for start in range(0, len(payloads), batch))
    in_flight = in_flight_per_worker * workers
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    listener = QueueListener(queue, _Relay())
    listener.start()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(queue, os.getpid()))
    slots = SlotFile(in_flight, block_rows or batch, *kind) if kind is not None else None
    try:

        def submit(chunk: Sequence[object]):
            slot = slots.take() if slots is not None else None
            if block_rows and slot is not None:
                return pool.submit(read_block_into, reader, chunk[0], slot), slot
            return pool.submit(read_batch, reader, chunk, slot), slot

        window = deque(submit(chunk) for chunk in islice(batches, in_flight))
        while window:
            future, slot = window.popleft()
            done = future.result()
            if slot is not None:
                done.block = slots.images(slot, done.rows or done.stacked)
            yield done  # the caller writes the block before asking for the next batch
            if slot is not None:
                slots.give_back(slot)
            following = next(batches, None)
            if following is not None:
                window.append(submit(following))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        listener.stop()
        if slots is not None:
            slots.close()
