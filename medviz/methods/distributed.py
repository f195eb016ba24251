"""Gathering outputs across DDP processes so contrastive negatives come from the global batch."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_gather


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (b_local, d) from all processes into (b_global, d), keeping gradients.

    The backward pass sums the gradients of every process's copy into the local rows. Each
    process then holds world_size x its share of the global-batch gradient, and DDP's averaging
    over processes gives exactly the gradient of one process on the whole batch. Without a
    process group (one device) it returns ``x`` unchanged.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return torch.cat(all_gather(x.contiguous()), dim=0)
