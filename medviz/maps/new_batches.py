"""New images of technical batches in a finished map (``medviz embed``; docs/invariance.md).

A network trained for invariance to technical batches embeds new images the way it trained:
each technical batch with BatchNorm statistics of its own images (batch-homogeneous training) and
intensities mapped by its own range (``dataset.normalise=batch``; a batch never seen gets its range
from its own images). Without them, a plate imaged brighter than the training plates is clipped:
:func:`warn_outside_training_range` says so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medviz.data.intensity import dataset_percentiles
from medviz.methods.base import ContrastiveMethod
from medviz.methods.batch_statistics import FEW_IMAGES, batch_norm_layers, own_statistics
from medviz.runs.config import load_run_config

log = logging.getLogger("medviz")


@torch.no_grad()
def embed_images(
    module: ContrastiveMethod,
    images: np.ndarray,
    batch_size: int = 512,
    groups: np.ndarray | None = None,
    rows: torch.Tensor | None = None,
) -> np.ndarray:
    """Stored images (M, H, W, C) -> map coordinates float32 (M, 2), through the model's own preprocessing.

    ``groups``: int (M,) technical batch of each image, for a network trained on batch-homogeneous
    mini-batches (BEN): each group is embedded with BatchNorm statistics of its own images
    (:mod:`medviz.methods.batch_statistics`). ``rows``: (M,) each image's per-batch intensity range
    (``dataset.normalise=batch``; :meth:`Preprocess.batch_rows`).
    """
    tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    rows = torch.zeros(0, dtype=torch.long) if rows is None else rows
    if groups is None or not batch_norm_layers(module):
        groups = np.zeros(len(images), np.int64)
        use_own_statistics = False
    else:
        use_own_statistics = True
    coords = np.empty((len(images), 2), np.float32)

    def forward(pair: tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
        return module.embed(*pair)

    for group in np.unique(groups):
        where = torch.from_numpy(np.flatnonzero(groups == group))
        # A chunk goes to the device only when it is embedded: a group may be millions of images.
        chunks = partial(_chunks, tensor, rows, where, batch_size, module.device)
        if not use_own_statistics:
            coords[where.numpy()] = torch.cat([forward(pair).float().cpu() for pair in chunks()]).numpy()
            continue
        with own_statistics(module, chunks, forward) as seen:
            if seen < FEW_IMAGES:
                log.warning(f"technical batch {group}: BatchNorm statistics from {seen} new images only; noisy")
            coords[where.numpy()] = torch.cat([forward(pair).float().cpu() for pair in chunks()]).numpy()
    return coords


def _chunks(
    tensor: torch.Tensor, rows: torch.Tensor, where: torch.Tensor, size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Images (b, C, H, W) and their intensity rows (b,) (None without per-batch ranges) of ``where``, on ``device``."""
    for chunk in where.split(size):
        yield tensor[chunk].to(device), rows[chunk].to(device) if rows.numel() else None


def new_image_batches(metadata: pd.DataFrame | None, column: str | None, count: int) -> np.ndarray:
    """Each new image's technical batch (text, (M,)): from ``column`` (the run's ``dataset.batch``) where
    the new images have it, else one batch for all of them (``new images``)."""
    if metadata is not None and column is not None and column in metadata.columns:
        return metadata[column].astype(str).to_numpy()
    return np.full(count, "new images")


def technical_settings(
    run_dir: Path, module: ContrastiveMethod, images: np.ndarray, batches: np.ndarray
) -> tuple[np.ndarray | None, torch.Tensor | None]:
    """What a run trained for invariance to technical batches needs to embed new images: (groups for
    BatchNorm statistics of their own, or None; per-batch intensity rows, or None). Technical batches
    the run never saw get ranges from their own images (the run's percentiles), said once."""
    cfg = load_run_config(run_dir)
    groups = None
    if cfg.get("invariance", {}).get("homogeneous_batches", False):
        codes, names = pd.factorize(batches, sort=True)
        log.info(f"BatchNorm statistics of each of the {len(names)} technical batches of the new images, from them")
        groups = codes.astype(np.int64)
    rows = None
    pre = module.preprocess
    if pre.per_batch:
        new = sorted(set(batches.tolist()) - set(pre.batch_names))
        if new:
            percentiles = tuple(cfg.dataset.get("percentiles", (0.1, 99.9)))
            ranges = [dataset_percentiles(images, percentiles, np.flatnonzero(batches == name)) for name in new]
            pre.add_batches(new, torch.tensor([r.low for r in ranges]), torch.tensor([r.high for r in ranges]))
            log.info(
                f"{len(new)} technical batches new to the run ({', '.join(new[:5])}{' ...' if len(new) > 5 else ''}): "
                f"intensities mapped by their own percentiles {list(percentiles)}"
            )
        rows = pre.batch_rows(batches.tolist())
    return groups, rows


#: Share of a channel's new pixels beyond the training intensities above which embed says so.
CLIPPED_SHARE = 0.01


def outside_training_range(images: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, C) and the training range per channel (C,) -> each channel's share of pixels
    above the range (highlights cut) and below it (dark detail flattened), each (C,), from a sample
    of at most about 2,000 images."""
    sample = images[:: max(1, len(images) // 2000)]
    flat = sample.reshape(-1, sample.shape[-1])
    return (flat > high).mean(axis=0), (flat < low).mean(axis=0)


def warn_outside_training_range(
    images: np.ndarray, module: ContrastiveMethod, what: str
) -> dict[int, tuple[float, float]]:
    """Say which channels of the new images fall outside the intensities the network was trained on
    (they are clipped to it, so a brighter plate loses its highlights silently otherwise); returns
    channel -> (share of its pixels above the range, share below), for the channels where either
    exceeds ``CLIPPED_SHARE``. The two ends are said apart: a brighter plate loses highlights, a
    darker one its faint detail, and which one happened tells the user what went wrong."""
    pre = module.preprocess
    if pre.scales_per_image:
        return {}
    low = pre.low.flatten().cpu().numpy()
    high = pre.high.flatten().cpu().numpy()
    above, below = outside_training_range(images, low, high)
    clipped = {
        int(c): (float(a), float(b))
        for c, (a, b) in enumerate(zip(above, below, strict=True))
        if max(a, b) > CLIPPED_SHARE
    }
    if clipped:
        listed = "; ".join(f"channel {c}: {a:.1%} above, {b:.1%} below" for c, (a, b) in clipped.items())
        log.warning(
            f"{what}: pixels outside the intensities the network was trained on are clipped to them ({listed}). "
            "Above: brighter than any training plate, highlights cut; below: darker, faint detail flattened to "
            "the background. Train with its plates, or with invariance=batch (per-batch intensities), to place "
            "it faithfully"
        )
    return clipped
