"""CIFAR-10 through torchvision, for the paper's control on natural images (§5: rotations hurt)."""

from __future__ import annotations

import numpy as np

from medviz.data.arrays import ImageArrays
from medviz.data.errors import DataError
from medviz.data.medmnist_source import data_root


def load_cifar10(root: str | None = None, download: bool = False) -> ImageArrays:
    """Train then test split (60,000 images, 32x32), from torchvision's on-disk format.

    Args:
        root: folder holding ``cifar-10-batches-py/`` (default ``$MEDVIZ_DATA`` or ~/.medmnist).
        download: fetch the archive through torchvision when missing.
    """
    from torchvision.datasets import CIFAR10

    folder = data_root(root)
    parts = []
    for train in (True, False):
        try:
            parts.append(CIFAR10(str(folder), train=train, download=download))
        except RuntimeError as err:
            raise DataError(
                f"CIFAR-10 not found or corrupted under {folder} ({err}). Put the extracted "
                f"cifar-10-batches-py/ folder there, or pass dataset.source.download=true."
            ) from None
    images = np.concatenate([p.data for p in parts])
    labels = np.concatenate([np.asarray(p.targets) for p in parts]).astype(np.int64)
    split = np.concatenate([np.full(len(p.data), "train" if i == 0 else "test") for i, p in enumerate(parts)])
    return ImageArrays(
        images=np.ascontiguousarray(images),
        labels=labels,
        class_names=tuple(parts[0].classes),
        name="cifar10",
        split=split,
    )
