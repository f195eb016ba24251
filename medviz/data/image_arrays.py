"""The in-memory form every data source produces, and the statistics augmentations need."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medviz.data.display import ConvertedRows, channel_legend, display_rgb, display_view
from medviz.data.intensity import Intensity, byte_range, dataset_percentiles
from medviz.store.gather import blocks, gather
from medviz.store.location import cache_key
from medviz.store.sidecar import kept_beside

#: Channel statistics of a sample up to this size (as float64 bytes) are computed in one pass.
STATS_IN_ONE_PASS = 256 * 2**20
#: ... a larger sample in blocks of this size (float64 bytes; to_unit makes a few copies of a block).
STATS_BLOCK = 32 * 2**20

#: The dtypes images are stored in: 8-bit (photographs, stains), 16-bit (microscopy cameras), float.
STORED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


@dataclass(frozen=True)
class ImageStats:
    """What a model's preprocessing and the augmentations need to know of a dataset.

    Attributes:
        mean, std: per-channel mean and std of the pixels in [0, 1] (the model's normalisation).
        fill: the mean border colour in [0, 1], for corners uncovered by rotation (paper §4).
        intensity: how stored values become [0, 1] (:mod:`medviz.data.intensity`); None: 0-255.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    fill: tuple[float, ...]
    intensity: Intensity | None = None

    @property
    def channels(self) -> int:
        return len(self.mean)


@dataclass
class ImageArrays:
    """A whole dataset in memory (or memory-mapped), in MedMNIST's layout with any channel count.

    Attributes:
        images: (N, H, W, C) in their stored dtype: uint8 (RGB photographs and stains, C = 3),
            uint16 or float32 (microscopy, any C); never rescaled when stored.
        labels: int64 (N,), class indices into ``class_names``; -1 where unlabelled.
        class_names: one name per class index.
        name: short dataset name, used in titles and file names.
        split: optional per-image split tag (e.g. "train"/"val"/"test"), same order as images.
        files: optional source file of each image (folder datasets), same order as images.
        border_rgb: the mean border colour (raw 8-bit scale / 255) when a loader has it cached;
            computed on demand if None.
        intensity: how stored values become [0, 1]; None: 0-255 for uint8, else dataset percentiles.
        channel_names: optional name per channel (legends of the map tools).
        channel_colours: optional display colour per channel (matplotlib names or #rrggbb).
        cache_file: the on-disk cache the images came from, if any (statistics are kept beside it).
        metadata: optional table (N rows, same order as images): the key column (``path`` or
            ``index``) and every metadata column (:mod:`medviz.data.prepare.metadata`).
        label_column: the metadata column the classes came from (``dataset.label``), if any.
        batch_column: the metadata column naming each image's technical batch (``dataset.batch``), if any.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    name: str
    split: np.ndarray | None = None
    files: list[Path] | None = None
    border_rgb: np.ndarray | None = field(default=None, repr=False)
    intensity: Intensity | None = None
    channel_names: tuple[str, ...] | None = None
    channel_colours: tuple[str, ...] | None = None
    cache_file: Path | None = field(default=None, repr=False)
    metadata: pd.DataFrame | None = field(default=None, repr=False)
    label_column: str | None = None
    batch_column: str | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype not in STORED_DTYPES:
            raise ValueError(
                f"dataset '{self.name}': images must be (N, H, W, C) of uint8, uint16 or float32, got "
                f"{self.images.dtype} {self.images.shape}"
            )
        if len(self.images) == 0:
            raise ValueError(f"dataset '{self.name}' has no images")
        if self.labels.shape != (len(self.images),):
            raise ValueError(
                f"dataset '{self.name}': {len(self.images)} images but labels of shape "
                f"{self.labels.shape}; expected ({len(self.images)},)"
            )
        if self.metadata is not None and len(self.metadata) != len(self.images):
            raise ValueError(f"dataset '{self.name}': {len(self.images)} images but {len(self.metadata)} metadata rows")

    def batches(self) -> tuple[np.ndarray, tuple[str, ...]] | None:
        """Each image's technical batch as codes int64 (N,) into names, from ``batch_column``; None without one."""
        if self.batch_column is None or self.metadata is None:
            return None
        values = self.metadata[self.batch_column]
        codes, names = pd.factorize(values, sort=True)
        return codes.astype(np.int64), tuple(str(n) for n in names)

    def intensity_rows(self) -> np.ndarray | None:
        """With ``dataset.normalise=batch``: each image's row of the per-batch ranges, int64 (N,) (matched by
        the batch's name); None otherwise."""
        scale = self.scale()
        if not scale.per_batch or self.batch_column is None or self.metadata is None:
            return None
        return scale.batch_rows(self.metadata[self.batch_column])

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[-1])

    def scale(self) -> Intensity:
        """The intensity mapping: the one set (``dataset.normalise``), else 0-255 or dataset percentiles."""
        if self.intensity is None:
            self.intensity = (
                byte_range(self.channels)
                if self.images.dtype == np.uint8
                else dataset_percentiles(self.images, (0.1, 99.9))
            )
        return self.intensity

    def display_images(self, rows: np.ndarray | None = None) -> np.ndarray | ConvertedRows:
        """uint8 RGB (N, H, W, 3) for the map tools: 8-bit RGB as stored, other images as a
        false-colour composite (:mod:`medviz.data.display`). Of ``rows`` when given; else all of
        them as a view that converts the rows it is indexed with (a million images are never
        converted at once)."""
        if rows is None:
            return display_view(self.images, self.scale(), self.channel_colours)
        return display_rgb(self.images[np.asarray(rows)], self.scale(), self.channel_colours)

    def channel_legend(self) -> str:
        """Which colour shows which channel ('' for plain RGB), for the map tools' titles."""
        return channel_legend(self.channels, self.channel_names, self.channel_colours)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels[self.labels >= 0], minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts, strict=True)}

    def border_colour(self) -> np.ndarray:
        """Mean colour of the border pixels over the whole dataset, float (C,) in [0, 1].

        The paper (§4, Augmentations) fills the corners uncovered by an arbitrary rotation with
        "the average color of all border pixels across all images in a given dataset". Computed
        once and cached on the object; with another intensity mapping than 0-255, on the mapped
        values (so per-image scaling is in it too).
        """
        if self.border_rgb is None:
            scale = self.scale()
            name = f"border-{cache_key(**asdict(scale))}"
            self.border_rgb = np.asarray(
                kept_beside(self.cache_file, name, lambda: {"rgb": self._border(scale)})["rgb"]
            )
        return np.asarray(self.border_rgb, dtype=np.float32)

    def _border(self, scale: Intensity) -> list[float]:
        if scale.is_byte_range():
            return border_colour(self.images).tolist()
        mean = BorderMean(self.channels, full_scale=1.0)
        rows = self.intensity_rows()
        start = 0
        for block in blocks(self.images, 1024):  # to_unit copies whole images: small blocks
            of_block = None if rows is None else rows[start : start + len(block)]
            mean.add(scale.to_unit(block, np.float64, rows=of_block))
            start += len(block)
        return mean.value().tolist()

    def channel_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std of the pixels in [0, 1], each float (C,), for Normalize.

        Over every ``N // 20000``-th image. A sample whose float64 copy fits ``STATS_IN_ONE_PASS``
        bytes is reduced in one pass, as always (so results stay the same to the last bit);
        a larger one in blocks of rows, with running sums, so memory stays small whatever the
        dataset (a 20,000-image sample of 64 px RGB images is 2 GB as float64).
        """
        step = max(1, len(self.images) // 20000)
        rows = np.arange(0, len(self.images), step)
        image_values = int(np.prod(self.images.shape[1:]))
        ranges = self.intensity_rows()  # per-batch ranges (dataset.normalise=batch), else None
        if len(rows) * image_values * 8 <= STATS_IN_ONE_PASS:
            of_rows = None if ranges is None else ranges[::step]
            sample = self.scale().to_unit(self.images[::step], np.float64, rows=of_rows)
            mean = sample.mean(axis=(0, 1, 2))
            std = np.maximum(sample.std(axis=(0, 1, 2)), 1e-3)
            return mean.astype(np.float32), std.astype(np.float32)
        total, squares, count = np.zeros(self.channels), np.zeros(self.channels), 0
        block = max(1, STATS_BLOCK // 8 // image_values)
        for start in range(0, len(rows), block):
            chunk = rows[start : start + block]
            of_chunk = None if ranges is None else ranges[chunk]
            x = self.scale().to_unit(gather(self.images, chunk), np.float64, rows=of_chunk)
            total += x.sum(axis=(0, 1, 2))
            squares += np.square(x).sum(axis=(0, 1, 2))
            count += x.shape[0] * x.shape[1] * x.shape[2]
        mean = total / count
        std = np.maximum(np.sqrt(np.maximum(squares / count - mean**2, 0)), 1e-3)
        return mean.astype(np.float32), std.astype(np.float32)

    def stats(self) -> ImageStats:
        """The dataset's intensity mapping, normalisation statistics and border colour, as plain floats."""
        mean, std = self.channel_stats()
        fill = tuple(self.border_colour().tolist())
        return ImageStats(tuple(mean.tolist()), tuple(std.tolist()), fill, self.scale())


class BorderMean:
    """Running mean of the one-pixel border of images, fed in blocks (n, H, W, C) of values 0-``full_scale``."""

    def __init__(self, channels: int = 3, full_scale: float = 255.0) -> None:
        self.total = np.zeros(channels)
        self.count = 0
        self.full_scale = full_scale

    def add(self, block: np.ndarray) -> None:
        # Only the edges become float64 (a whole block of 64 px images would be 800 MB).
        edges = [
            np.asarray(e, dtype=np.float64) for e in (block[:, 0], block[:, -1], block[:, 1:-1, 0], block[:, 1:-1, -1])
        ]
        channels = len(self.total)
        self.total += sum(e.reshape(-1, channels).sum(axis=0) for e in edges)
        self.count += sum(e.shape[0] * e.shape[1] for e in edges)

    def value(self) -> np.ndarray:
        """float32 (C,) in [0, 1]."""
        return (self.total / max(self.count, 1) / self.full_scale).astype(np.float32)


def border_colour(images: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Mean colour of the one-pixel border of every image; uint8 (N, H, W, C) -> float (C,) in [0, 1]."""
    mean = BorderMean(images.shape[-1])
    for block in blocks(images, chunk):
        mean.add(block)
    return mean.value()
