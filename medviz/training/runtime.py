"""Hardware decisions: the device and precision of a run, and durations as people read them."""

from __future__ import annotations

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
