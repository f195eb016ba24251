"""Batches served from a copy of the whole stored dataset on the GPU: no loader, no copies per step.

An 18k-image 28x28 dataset is 42 MB of uint8 -- nothing next to a GPU's memory -- so instead of a
DataLoader feeding the device every step, the images go to the device once and each batch is
one index on the device. The order comes from a generator seeded with ``seed + epoch``, so it
is reproducible, independent of everything else that draws random numbers, and a resumed run
continues with the same order.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class EpochOrder:
    """The sample order of an epoch: a seeded permutation (or 0..N-1), this process's share under DDP.

    Lightning calls ``set_epoch`` at the start of every epoch on a loader's ``sampler``. It is also
    the sampler of the CPU loaders: the order then depends on nothing but seed and epoch, so a
    resumed run sees the same order, and the global generator is left to the augmentations.
    """

    def __init__(self, n: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.n = n
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._skip: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip_first(self, epoch: int, samples: int) -> None:
        """Leave out the first ``samples`` of ``epoch``'s order, once: a run resumed in the middle of an
        epoch goes on with the images that epoch had not reached, as the uninterrupted run did."""
        self._skip = (epoch, samples)

    def indices(self, device: torch.device) -> torch.Tensor:
        """(ceil((N - rank) / world_size),) int64 indices on ``device``."""
        if not self.shuffle:
            order = torch.arange(self.n, device=device)
        else:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=generator, device=device)
        order = order[self.rank :: self.world_size]
        if self._skip is not None and self._skip[0] == self.epoch:
            order, self._skip = order[self._skip[1] :], None
        return order

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices(torch.device("cpu")).tolist())


class DeviceBatches:
    """Iterable of ``(images (b, C, H, W) as stored, indices int64 (b,))`` batches, all on the images' device.

    Args:
        images: (N, C, H, W) in their stored dtype, already on the device.
        batch_size: images per batch (per process under DDP).
        order: which indices, in which order, each epoch.
        drop_last: leave out the last short batch (training: every step sees b images).
        partners: cross-batch positives (:class:`~medviz.data.partners.CrossBatchPartners`): batches are
            then ``(images, partner images, indices, partner indices)``.
    """

    def __init__(
        self, images: torch.Tensor, batch_size: int, order: EpochOrder, drop_last: bool, partners=None
    ) -> None:
        self.images = images
        self.batch_size = batch_size
        self.sampler = order
        self.drop_last = drop_last
        self.partners = partners

    def __len__(self) -> int:
        full, rest = divmod(len(self.sampler), self.batch_size)
        return full if self.drop_last or not rest else full + 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = self.sampler.indices(self.images.device)  # shorter in an epoch resumed part-way
        full, rest = divmod(len(order), self.batch_size)
        for i in range(full if self.drop_last or not rest else full + 1):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            if self.partners is None:
                yield self.images[index], index
                continue
            partner = torch.as_tensor(self.partners.draw(index.cpu().numpy()), device=index.device)
            yield self.images[index], self.images[partner], index, partner
