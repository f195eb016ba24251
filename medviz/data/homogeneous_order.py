"""Batch-homogeneous mini-batches (BEN; Lin & Lu 2022): every training step sees one technical batch.

When a step's images all come from one plate (slide, experiment), BatchNorm's statistics are that
plate's and the contrastive negatives are images of the same plate, so the network gains nothing
by telling plates apart -- the plate effect is absorbed instead of learnt (docs/invariance.md).

The order of an epoch: each technical batch's images in a seeded permutation, cut into full
mini-batches of the global batch size; the mini-batches of all technical batches shuffled
together. A technical batch's last, incomplete mini-batch is left out of that epoch (the
permutation changes every epoch, so every image is seen). Technical batches with fewer images than
one mini-batch train together in mixed mini-batches, said once. Under DDP every rank takes its
slice of the same global mini-batch, so all ranks' negatives of a step come from one batch.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from medviz.data.device_batches import EpochOrder

log = logging.getLogger("medviz")


class HomogeneousOrder(EpochOrder):
    """The sample order of an epoch in which each global mini-batch comes from one technical batch.

    Args:
        groups: int (N,) technical batch code of every image.
        global_batch: images per step over all ranks (``batch_size``).
        seed: the order of epoch e is seeded with ``seed + e``.
        rank, world_size: this process's slice of every global mini-batch.
        group_names: names of the codes, for the message about small batches.
    """

    def __init__(
        self,
        groups: np.ndarray,
        global_batch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        group_names: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(len(groups), shuffle=True, seed=seed, rank=rank, world_size=world_size)
        if global_batch % world_size:
            raise ValueError(f"batch size {global_batch} is not divisible by the {world_size} processes")
        self.global_batch = int(global_batch)
        self.local_batch = self.global_batch // world_size
        codes, counts = np.unique(groups, return_counts=True)
        self._members = [np.flatnonzero(groups == code) for code in codes]
        small = counts < self.global_batch
        self._pooled = np.concatenate([m for m, s in zip(self._members, small, strict=True) if s] or [np.empty(0, int)])
        self._members = [m for m, s in zip(self._members, small, strict=True) if not s]
        if small.any():
            names = [group_names[c] if group_names else str(c) for c in codes[small]]
            log.warning(
                f"batch-homogeneous mini-batches: {len(names)} technical batches have fewer than {self.global_batch} "
                f"images (batch_size), e.g. {names[0]} ({counts[small][0]} images); they train together in mixed "
                "mini-batches. Lower batch_size to give each its own"
            )
        steps = sum(len(m) // self.global_batch for m in self._members) + len(self._pooled) // self.global_batch
        if steps == 0:
            raise ValueError(f"no technical batch fills one mini-batch of {self.global_batch} images")
        self._steps = steps

    def global_batches(self, epoch: int) -> np.ndarray:
        """(steps, global_batch) image indices of ``epoch``: one technical batch per row (pooled small
        batches aside), rows in a seeded random order."""
        rng = np.random.default_rng(self.seed + epoch)
        rows = []
        for members in [*self._members, self._pooled]:
            full = len(members) // self.global_batch * self.global_batch
            if full:
                rows.append(rng.permutation(members)[:full].reshape(-1, self.global_batch))
        batches = np.concatenate(rows)
        return batches[rng.permutation(len(batches))]

    def indices(self, device: torch.device) -> torch.Tensor:
        """(steps * local_batch,) int64 indices of this rank on ``device``, in mini-batch order."""
        batches = self.global_batches(self.epoch)
        mine = batches[:, self.rank * self.local_batch : (self.rank + 1) * self.local_batch].reshape(-1)
        order = torch.as_tensor(mine, dtype=torch.int64, device=device)
        if self._skip is not None and self._skip[0] == self.epoch:
            order, self._skip = order[self._skip[1] :], None
        return order

    def __len__(self) -> int:
        return self._steps * self.local_batch
