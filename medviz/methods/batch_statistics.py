"""BatchNorm with each technical batch's own statistics at embedding time (BEN; Lin & Lu 2022).

A network trained on batch-homogeneous mini-batches (:mod:`medviz.data.homogeneous_order`) has
only ever normalised a plate's images with that plate's statistics. Embedding each technical batch
with its own BatchNorm statistics keeps it that way: whatever shifts a whole plate (staining,
exposure) is taken out by the normalisation before it reaches the map. The statistics are computed
from the images being embedded, one technical batch at a time, so a plate never seen in training
(``medviz embed``) gets its own from its new images.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

log = logging.getLogger("medviz")

#: Fewer images than this give noisy statistics; said when a technical batch is this small.
FEW_IMAGES = 64


def batch_norm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer of ``module`` (1-D and 2-D)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def own_statistics(module: nn.Module, chunks: Callable[[], Iterator], forward: Callable) -> Iterator[int]:
    """Inside the block, ``module``'s BatchNorm layers hold the statistics of the images ``chunks()`` yields.

    ``forward(chunk)`` runs the network on one chunk: stored images (B, C, H, W), or a tuple whose
    first item they are (with each image's intensity rows, say); the layers'
    running mean and variance become the average over all chunks, each weighted by its images (not
    the exponential average of training). The trained statistics are put back on leaving. Yields the
    number of images the statistics came from.
    """
    layers = batch_norm_layers(module)
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum) for m in layers]
    modes = [m.training for m in layers]
    seen = 0
    try:
        for m in layers:
            m.reset_running_stats()
            m.train()
        with torch.no_grad():
            for chunk in chunks():
                count = len(chunk[0]) if isinstance(chunk, tuple) else len(chunk)
                if count < 2:  # BatchNorm needs two values per channel; a lone image's share is left out
                    continue
                for m in layers:  # each chunk weighted by its images: the running values are a plain average
                    m.momentum = count / (seen + count)
                forward(chunk)
                seen += count
        if seen == 0:  # nothing to measure: the trained statistics, not the reset ones
            for m, (mean, var, _, _) in zip(layers, saved, strict=True):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
        for m in layers:
            m.eval()
        yield seen
    finally:
        for m, (mean, var, tracked, momentum), mode in zip(layers, saved, modes, strict=True):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(tracked)
            m.momentum = momentum
            m.train(mode)
