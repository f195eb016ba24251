"""Ctrl-C while medviz writes: a checkpoint write is never cut in the middle; a second Ctrl-C exits.

Every handler medviz installs is restored when its block ends, so nothing outlives the run (or
the test) that installed it. Lightning restores the handlers it replaced when a fit ends.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


def exit_now(signum: int, frame: FrameType | None) -> None:
    """A handler that ends the process at once with the shell's code for the signal (128 + signum)."""
    os._exit(128 + signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Let a Ctrl-C that arrives inside the block take effect after it (a second one exits at once).

    Outside the main thread signals cannot be handled, and nothing changes. Inside
    :func:`second_ctrl_c_exits` (the user already pressed Ctrl-C once) nothing is deferred.
    """
    current = signal.getsignal(signal.SIGINT)
    if not _in_main_thread() or current is exit_now:
        yield
        return
    received: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        if received:
            os._exit(128 + signum)
        received.append(signum)

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(received[0], None)  # Python's default handler raises KeyboardInterrupt here


@contextmanager
def second_ctrl_c_exits() -> Iterator[None]:
    """Inside the block, Ctrl-C ends the process at once; the previous handler comes back after it."""
    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
