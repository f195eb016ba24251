"""Decoding in worker processes: batches of items in, arrays (or the reason they failed) out, in order.

Workers are started with ``spawn`` (a clean interpreter: safe whatever threads the parent runs,
PyTorch's included) and import only the readers (numpy, PIL, tifffile). Their log lines -- an
alpha channel dropped, a dtype converted -- are relayed to the parent's ``medviz`` logger, so
nothing a worker does to an image goes unsaid. Ctrl-C is the parent's to handle: workers ignore
it and the parent stops them.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from logging.handlers import QueueHandler, QueueListener

import numpy as np
from PIL import UnidentifiedImageError

#: Errors that make one file unreadable (it is skipped and reported); anything else stops the ingest.
UNREADABLE = (OSError, UnidentifiedImageError, ValueError)

#: Fewer new items than this are decoded in the calling process.
PARALLEL_FROM = 4096

#: Batches each worker may have decoded or in hand before the caller takes them: enough that the
#: workers keep decoding while the caller syncs a commit to disk (a few hundred ms), few enough
#: that memory stays small (8 batches of 64 images of 64 px: 6 MB per worker).
IN_FLIGHT_PER_WORKER = 8

Decoded = tuple[np.ndarray | None, str | None]  # the image, or None and why it could not be read


def read_batch(reader: Callable[[object], np.ndarray], payloads: Sequence[object]) -> list[Decoded]:
    """``reader(payload)`` for each payload; an unreadable one gives (None, the error)."""
    out: list[Decoded] = []
    for payload in payloads:
        try:
            out.append((reader(payload), None))
        except UNREADABLE as err:
            out.append((None, f"{type(err).__name__}: {err}"))
    return out


class _Relay(logging.Handler):
    """Hands a worker's log record to the parent's logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


def _start_worker(queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logger = logging.getLogger("medviz")
    logger.handlers = [QueueHandler(queue)]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def decoded_batches(
    reader: Callable[[object], np.ndarray], payloads: Sequence[object], workers: int, batch: int = 64
) -> Iterator[list[Decoded]]:
    """Decoded batches of ``payloads``, in order; in ``workers`` processes when that pays.

    At most ``IN_FLIGHT_PER_WORKER`` batches per worker are in flight, so memory stays bounded
    whatever the number of items. With one worker, or fewer than ``PARALLEL_FROM`` items (starting the workers costs
    about as much as decoding a few thousand small images here), everything is read in this process.
    """
    batches = [payloads[start : start + batch] for start in range(0, len(payloads), batch)]
    if workers <= 1 or len(payloads) < PARALLEL_FROM:
        for chunk in batches:
            yield read_batch(reader, chunk)
        return
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    listener = QueueListener(queue, _Relay())
    listener.start()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(queue,))
    try:
        pending = iter(batches)
        first = islice(pending, IN_FLIGHT_PER_WORKER * workers)
        window = deque(pool.submit(read_batch, reader, chunk) for chunk in first)
        while window:
            done = window.popleft().result()
            following = next(pending, None)
            if following is not None:
                window.append(pool.submit(read_batch, reader, following))
            yield done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        listener.stop()
