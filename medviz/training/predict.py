"""Embedding every image of a trained run: one pass without augmentation, rows in dataset order.

With batch-homogeneous training (``invariance.homogeneous_batches``) each technical batch is
embedded with its own BatchNorm statistics (:mod:`medviz.methods.batch_statistics`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import torch

from medviz.data.datamodule import ArrayDataModule
from medviz.methods.base import ContrastiveMethod
from medviz.methods.batch_statistics import FEW_IMAGES, batch_norm_layers, own_statistics

log = logging.getLogger("medviz")

#: Images per forward pass when embedding one technical batch.
CHUNK = 512


@torch.no_grad()
def predict(module: ContrastiveMethod, datamodule: ArrayDataModule) -> dict[str, np.ndarray]:
    """Embed every image without augmentation, on the module's device; rows in dataset order.

    A plain loop rather than ``trainer.predict``: after a DDP fit, one process embeds the whole
    dataset instead of each process embedding a shard.
    """
    module.eval()
    if datamodule.groups is not None and batch_norm_layers(module):
        return predict_per_batch(module, datamodule)
    outputs: list[dict[str, torch.Tensor]] = []
    for images, indices in datamodule.predict_dataloader():
        step = module.predict_step((images.to(module.device), indices.to(module.device)), 0)
        outputs.append({key: value.cpu() for key, value in step.items()})
    return _in_dataset_order(outputs)


@torch.no_grad()
def predict_per_batch(module: ContrastiveMethod, datamodule: ArrayDataModule) -> dict[str, np.ndarray]:
    """Each technical batch embedded with BatchNorm statistics of its own images (BEN)."""
    assert datamodule.groups is not None  # predict() sends only batch-homogeneous runs here
    codes, names = datamodule.groups
    outputs: list[dict[str, torch.Tensor]] = []
    for code, name in enumerate(names):
        rows = np.flatnonzero(codes == code)
        if not len(rows):
            continue

        def chunks(rows: np.ndarray = rows) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for start in range(0, len(rows), CHUNK):
                images, indices = datamodule.dataset.__getitems__(rows[start : start + CHUNK].tolist())
                yield images.to(module.device), indices.to(module.device)

        with own_statistics(module, chunks, lambda batch: module.predict_step(batch, 0)) as seen:
            if seen < FEW_IMAGES:
                log.warning(
                    f"technical batch {name}: BatchNorm statistics from {seen} images only"
                    + (" (none: the trained ones are used)" if not seen else " -- noisy; its points may sit apart")
                )
            for batch in chunks():
                step = module.predict_step(batch, 0)
                outputs.append({key: value.cpu() for key, value in step.items()})
    return _in_dataset_order(outputs)


def _in_dataset_order(outputs: list[dict[str, torch.Tensor]]) -> dict[str, np.ndarray]:
    merged = {key: torch.cat([o[key] for o in outputs]).numpy() for key in outputs[0]}
    order = np.argsort(merged["index"], kind="stable")
    return {key: value[order] for key, value in merged.items()}
