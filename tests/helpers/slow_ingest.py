"""An ingest with worker processes that decode slowly, run as its own process so a test can kill it:
``python -m tests.helpers.slow_ingest <folder of images> <store folder>``."""

from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path

import medviz.store.workers as workers
from medviz.data.readers.images import read_resized
from medviz.data.sources.folder import folder_items, scan_folder
from medviz.store.ingest import ingest


def slow_read(path: str, size: int) -> object:
    """``read_resized`` after a pause, so the ingest is still running when the test kills it."""
    time.sleep(0.2)
    return read_resized(path, size)


def main(folder: str, store: str) -> None:
    workers.PARALLEL_FROM = 1  # worker processes for a small folder too
    files, _ = scan_folder(Path(folder))
    ingest(
        Path(store), folder_items(Path(folder), files), partial(slow_read, size=8), "slow", workers=2, commit_every=8
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
