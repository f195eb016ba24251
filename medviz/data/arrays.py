"""The in-memory form every data source produces, and the statistics augmentations need."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ImageStats:
    """What a model's preprocessing and the augmentations need to know of a dataset.

    Attributes:
        mean, std: per-channel mean and std of the pixels in [0, 1] (the model's normalisation).
        fill: the mean border colour in [0, 1], for corners uncovered by rotation (paper §4).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    fill: tuple[float, ...]


@dataclass
class ImageArrays:
    """A whole dataset in memory, in MedMNIST's layout.

    Attributes:
        images: uint8 (N, H, W, 3), RGB.
        labels: int64 (N,), class indices into ``class_names``; -1 where unlabelled.
        class_names: one name per class index.
        name: short dataset name, used in titles and file names.
        split: optional per-image split tag (e.g. "train"/"val"/"test"), same order as images.
        files: optional source file of each image (folder datasets), same order as images.
        border_rgb: the mean border colour when a loader has it cached; computed on demand if None.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    name: str
    split: np.ndarray | None = None
    files: list[Path] | None = None
    border_rgb: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(
                f"dataset '{self.name}': images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}"
            )
        if len(self.images) == 0:
            raise ValueError(f"dataset '{self.name}' has no images")
        if self.labels.shape != (len(self.images),):
            raise ValueError(
                f"dataset '{self.name}': {len(self.images)} images but labels of shape "
                f"{self.labels.shape}; expected ({len(self.images)},)"
            )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels[self.labels >= 0], minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts, strict=True)}

    def border_colour(self) -> np.ndarray:
        """Mean colour of the border pixels over the whole dataset, float (3,) in [0, 1].

        The paper (§4, Augmentations) fills the corners uncovered by an arbitrary rotation with
        "the average color of all border pixels across all images in a given dataset". Computed
        once and cached on the object.
        """
        if self.border_rgb is None:
            self.border_rgb = border_colour(self.images)
        return np.asarray(self.border_rgb, dtype=np.float32)

    def channel_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std of the pixels in [0, 1], each float (3,), for Normalize."""
        sample = self.images[:: max(1, len(self.images) // 20000)].astype(np.float64) / 255.0
        mean = sample.mean(axis=(0, 1, 2))
        std = np.maximum(sample.std(axis=(0, 1, 2)), 1e-3)
        return mean.astype(np.float32), std.astype(np.float32)

    def stats(self) -> ImageStats:
        """The dataset's normalisation statistics and border colour, as plain floats."""
        mean, std = self.channel_stats()
        return ImageStats(tuple(mean.tolist()), tuple(std.tolist()), tuple(self.border_colour().tolist()))


class BorderMean:
    """Running mean of the one-pixel border of images, fed in blocks of uint8 (n, H, W, 3)."""

    def __init__(self) -> None:
        self.total = np.zeros(3)
        self.count = 0

    def add(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float64)
        edges = [block[:, 0], block[:, -1], block[:, 1:-1, 0], block[:, 1:-1, -1]]
        self.total += sum(e.reshape(-1, 3).sum(axis=0) for e in edges)
        self.count += sum(e.shape[0] * e.shape[1] for e in edges)

    def value(self) -> np.ndarray:
        """float32 (3,) in [0, 1]."""
        return (self.total / max(self.count, 1) / 255.0).astype(np.float32)


def border_colour(images: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Mean RGB of the one-pixel border of every image; images uint8 (N, H, W, 3) -> float (3,)."""
    mean = BorderMean()
    for start in range(0, len(images), chunk):
        mean.add(images[start : start + chunk])
    return mean.value()
