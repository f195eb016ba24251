"""What every benchmark prints: the machine, the library versions and the command to rerun it."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable

import torch


def header(title: str) -> None:
    import lightning
    import torchvision

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"== {title} ==")
    print(
        f"date: {time.strftime('%Y-%m-%d %H:%M')}   machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, {device}"
    )
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"lightning {lightning.__version__}, torch threads {torch.get_num_threads()}"
    )
    print(f"command: python -m benchmarks.{os.path.basename(sys.argv[0]).removesuffix('.py')} {' '.join(sys.argv[1:])}")


def seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best
