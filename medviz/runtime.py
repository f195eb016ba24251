"""Hardware decisions: the device and precision of a run, and durations as people read them."""

from __future__ import annotations

import os

import numpy as np
import torch


def uses_gpu(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def resolve_precision(precision: str | int, accelerator: str) -> str | int:
    """``auto`` -> ``bf16-mixed`` on a GPU that supports it (else ``16-mixed``), ``32-true`` on CPU.

    The loss is computed in float32 in every case (see :func:`medviz.methods.losses.cauchy_infonce`).
    """
    if precision != "auto":
        return precision
    if not uses_gpu(accelerator):
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def peak_memory() -> dict[str, float]:
    """This process's peak resident memory and, on a GPU, the peak memory PyTorch allocated there (MiB).

    The RSS peak is the kernel's high-water mark of this process (``VmHWM``; where there is no
    /proc, ``ru_maxrss``): under DDP each process reports its own.
    """
    peak = {"peak_rss_mib": round(_peak_rss_kib() / 1024, 1)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


def _peak_rss_kib() -> int:
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def loader_workers(setting: int | str, data) -> int:
    """``num_workers``: ``auto`` is 0 for images in RAM and 4 (at most the cores) for images that
    stream from a memory map, so that reading the next batches overlaps the training step."""
    if setting != "auto":
        return int(setting)
    if not isinstance(data.images, np.memmap):
        return 0
    return min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
