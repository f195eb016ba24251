"""Hardware decisions: precision per device, and a time estimate before a long CPU run."""

from __future__ import annotations

import time

import torch

from medviz.methods.base import ContrastiveMethod


def uses_gpu(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def resolve_precision(precision: str | int, accelerator: str) -> str | int:
    """``auto`` -> ``bf16-mixed`` on a GPU that supports it (else ``16-mixed``), ``32-true`` on CPU.

    The loss is computed in float32 in every case (see :func:`medviz.losses.cauchy_infonce`).
    """
    if precision != "auto":
        return precision
    if not uses_gpu(accelerator):
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def seconds_per_image_step(
    module: ContrastiveMethod, image_shape: tuple[int, int, int], probe_batch: int = 16
) -> float:
    """Measure one full training step (augment, forward, backward) on CPU, per image.

    Runs on a copy of nothing: the step's gradients are discarded and no optimiser steps, so the
    module is unchanged apart from BatchNorm running statistics, which are saved and restored.
    """
    state = {k: v.clone() for k, v in module.state_dict().items()}
    images = torch.randint(0, 256, (probe_batch, *image_shape), dtype=torch.uint8)
    module.train()
    timings = []
    for _ in range(2):  # the first pass pays one-off allocation costs
        start = time.perf_counter()
        views = torch.cat([module.augment(images), module.augment(images)])
        module(views).float().pow(2).mean().backward()
        timings.append(time.perf_counter() - start)
    module.zero_grad(set_to_none=True)
    module.load_state_dict(state)
    return min(timings) / probe_batch


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
