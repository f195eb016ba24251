"""One LightningDataModule for every in-memory dataset: it serves batches as they are stored.

Augmentation does not happen here: batches go to the model's device in their stored dtype (uint8,
uint16 or float32, any channel count) and the method
augments them there in one batched pass (docs/reproducing.md, "Augmentations"). That keeps loader workers idle for small
images and makes a batch of 1024 cost one tensor index, not 1024 PIL calls. On a GPU, a dataset
that fits goes to the device once and batches never leave it (:mod:`medviz.data.device_batches`);
only datasets kept on disk (PCam's memory map) or too large use a loader.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from medviz.data.device_batches import DeviceBatches, EpochOrder
from medviz.data.homogeneous_order import HomogeneousOrder
from medviz.data.image_arrays import ImageArrays
from medviz.data.partners import CrossBatchPartners
from medviz.errors import ConfigError, DataError
from medviz.store.gather import gather

#: A dataset lives on the GPU when its stored images take at most this share of the GPU's memory.
DEVICE_MEMORY_SHARE = 0.25


class UInt8Images(Dataset):
    """Images as one tensor (N, C, H, W) in their stored dtype; fetching a list of indices is one gather.

    ``__getitems__`` lets PyTorch's DataLoader fetch a whole batch in one call, while samplers
    (shuffling, DistributedSampler) keep working on single indices as usual.
    """

    def __init__(self, images_nhwc: np.ndarray) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], torch.tensor(index)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.images[idx], idx


class MemmapImages(Dataset):
    """Images (N, H, W, C) left on disk in a memory-mapped array, in their stored dtype; each batch is read on demand.

    For datasets larger than ``speed.ram_budget``. Rows are read by offset in sorted order (forward
    reads, see :mod:`medviz.store.gather`), then put back in the requested order.
    """

    def __init__(self, images_nhwc: np.ndarray) -> None:
        self.images = images_nhwc

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, indices = self.__getitems__([index])
        return images[0], indices[0]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        rows = gather(self.images, idx)  # forward reads by offset; the stored dtype is kept
        return torch.from_numpy(rows.transpose(0, 3, 1, 2).copy()), torch.from_numpy(idx)


class PartneredImages(Dataset):
    """A training view of another dataset: each batch also brings each image's cross-batch partner
    (:mod:`medviz.data.partners`): ``(images, partner images, indices, partner indices)``."""

    def __init__(self, images: Dataset, partners: CrossBatchPartners) -> None:
        self.images = images
        self.partners = partners

    def __len__(self) -> int:
        return len(self.images)  # type: ignore[arg-type]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        images, idx = self.images.__getitems__(indices)  # type: ignore[attr-defined]
        partner_idx = self.partners.draw(np.asarray(indices))
        partner_images, partner_idx_t = self.images.__getitems__(partner_idx.tolist())  # type: ignore[attr-defined]
        return images, partner_images, idx, partner_idx_t


def _already_batched(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate for ``__getitems__``: the dataset already returns (images, indices)."""
    return batch


class ArrayDataModule(L.LightningDataModule):
    """Serves ``(images (B, C, H, W) in their stored dtype, indices int64 (B,))`` batches.

    Args:
        data: the dataset.
        batch_size: global batch size b (the paper: 1024; PCam 512). Under DDP each process
            gets b / world_size so the loss still sees b images per step.
        num_workers: loader workers; 0 is fastest for in-memory arrays.
        on_device: keep the images on the training device: ``"auto"`` does so on a GPU when the
            dataset is in RAM and fits (see ``DEVICE_MEMORY_SHARE``); True forces it (also on
            the CPU, where it is the same data without a loader); False never.
        seed: data order (epoch e uses the permutation seeded with ``seed + e``).
        homogeneous: every training mini-batch from one technical batch (``data.batches()``;
            :mod:`medviz.data.homogeneous_order`); the data must have a batch column.
        partners: cross-batch positives (:mod:`medviz.data.partners`): training batches then bring
            each image's partner too, ``(images, partner images, indices, partner indices)``.
    """

    def __init__(
        self,
        data: ImageArrays,
        batch_size: int,
        num_workers: int = 0,
        on_device: bool | str = "auto",
        seed: int = 0,
        homogeneous: bool = False,
        partners: CrossBatchPartners | None = None,
    ) -> None:
        super().__init__()
        self.data = data
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.on_device = on_device
        self.seed = seed
        self.in_ram = not isinstance(data.images, np.memmap)
        self.dataset = UInt8Images(data.images) if self.in_ram else MemmapImages(data.images)
        self._device_images: torch.Tensor | None = None
        self.partners = partners
        self.groups = None
        if homogeneous:
            batches = data.batches()
            if batches is None:
                raise ConfigError(
                    f"invariance.homogeneous_batches needs each image's technical batch, and dataset '{data.name}' "
                    "has none: name its column with dataset.batch=<column> (e.g. Metadata_Plate)"
                )
            self.groups = batches
        if len(data) < 2:
            raise DataError(
                f"dataset '{data.name}' has {len(data)} image; contrastive training needs at least 2 "
                "(one batch of at least 2 images)"
            )
        if batch_size < 2:
            raise ConfigError(f"batch_size must be at least 2 for a contrastive loss, got {batch_size}")
        if batch_size > len(data):
            raise DataError(
                f"batch_size={batch_size} is larger than dataset '{data.name}' "
                f"({len(data)} images): lower batch_size to at most {len(data)}"
            )

    def _per_process_batch(self) -> int:
        world = self.trainer.world_size if self.trainer is not None else 1
        return max(1, self.batch_size // world)

    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def keeps_data_on_device(self, device: torch.device) -> bool:
        if self.on_device == "auto":
            if device.type != "cuda" or not self.in_ram:
                return False
            total = torch.cuda.get_device_properties(device).total_memory
            return self.dataset.images.nbytes <= DEVICE_MEMORY_SHARE * total  # bytes: uint16 and float take more
        if self.on_device is True and not self.in_ram:
            raise DataError(
                f"dataset '{self.data.name}' is memory-mapped from disk (too large for RAM); "
                "it cannot be kept on the device: use speed.data_on_device=auto"
            )
        return bool(self.on_device)

    def _batches(self, batch_size: int, shuffle: bool, drop_last: bool) -> DeviceBatches | DataLoader:
        device = self._device()
        if not self.keeps_data_on_device(device):
            return self._loader(batch_size, shuffle, drop_last)
        if self._device_images is None or self._device_images.device != device:
            self._device_images = self.dataset.images.to(device)
        partners = self.partners if shuffle else None  # training only: embedding takes each image once
        order = self._order(batch_size, shuffle)
        return DeviceBatches(self._device_images, batch_size, order, drop_last, partners=partners)

    def _order(self, batch_size: int, shuffle: bool, split_by_rank: bool = True) -> EpochOrder:
        """The epoch's sample order: shuffled (batch-homogeneous when asked) for training, 0..N-1 otherwise.

        ``split_by_rank``: this process's share only (device batches); a loader's sampler gives every
        index and Lightning's distributed wrapper deals them out in turn (rank r: r, r + W, ...), which
        keeps each rank's k-th mini-batch inside the k-th global one.
        """
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        global_batch = batch_size * world
        if not (shuffle and split_by_rank):
            rank, world = 0, 1
        if shuffle and self.groups is not None:
            codes, names = self.groups
            return HomogeneousOrder(codes, global_batch, self.seed, rank, world, group_names=names)
        return EpochOrder(len(self.dataset), shuffle, self.seed, rank=rank, world_size=world)

    def _loader(self, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        # Own generators for the order and the workers' base seed: the global generator, which the
        # augmentations draw from, advances the same whether a run is fresh or resumed.
        dataset = (
            PartneredImages(self.dataset, self.partners) if shuffle and self.partners is not None else self.dataset
        )
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self._order(batch_size, shuffle, split_by_rank=False),
            generator=torch.Generator().manual_seed(self.seed),
            drop_last=drop_last,
            num_workers=self.num_workers,
            collate_fn=_already_batched,
            persistent_workers=self.num_workers > 0,
            pin_memory=self._device().type == "cuda",
        )

    def train_dataloader(self) -> DeviceBatches | DataLoader:
        # drop_last: a short final batch would change the number of negatives per step.
        return self._batches(self._per_process_batch(), shuffle=True, drop_last=True)

    def predict_dataloader(self) -> DeviceBatches | DataLoader:
        return self._batches(max(self._per_process_batch(), 256), shuffle=False, drop_last=False)
