"""One writer at a time per store: an exclusive file lock held for the length of an ingest."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger("medviz")


class StoreLock:
    """An exclusive lock on a store for the length of an ingest (released if the process dies).

    :meth:`acquire` raises the OSError of a store that cannot be written (a read-only file system,
    no permission), which :func:`ingest` answers by using the store as it is when it is up to date.
    """

    def __init__(self, store_dir: Path) -> None:
        self.path = store_dir / "lock"

    def acquire(self) -> None:
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(f"{self.path.parent}: another process is updating this store; waiting for it")
            fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        os.close(self.fd)  # closing releases the lock
