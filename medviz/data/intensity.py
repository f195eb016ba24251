"""How stored intensities (uint8, uint16 or float) become the [0, 1] values a network trains on.

Chosen per dataset with ``dataset.normalise`` (docs/datasets.md, "Fluorescence"):

* ``dataset``: one low/high pair per channel for the whole dataset, from percentiles
  (``dataset.percentiles``, default 0.1 / 99.9) of all its pixels or of a large sample. Absolute
  intensity stays comparable between images -- often the phenotype itself in fluorescence.
* ``image``: each image and channel scaled from its own minimum to its maximum. What readers
  that stretch every file do; it erases differences in absolute intensity between images.
* ``fixed``: a user-given range per channel (``dataset.intensity_range``).
* ``batch``: percentiles per technical batch (``dataset.batch``) and channel: each plate's images
  are mapped by that plate's own range, so a plate imaged brighter (lamp, exposure, camera offset)
  lands where the others do, while intensity differences *within* a plate -- the phenotype --
  are kept (docs/invariance.md).
* ``auto`` (default): 8-bit images use the fixed range 0-255 (exactly what medviz always did for
  RGB, so every RGB result stays the same); 16-bit and float images use ``dataset``.

The stored images are never changed: the chosen mapping travels with the model (its
preprocessing buffers), so a checkpoint embeds new images the way it was trained.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from medviz.errors import ConfigError
from medviz.store.gather import gather

log = logging.getLogger("medviz")

MODES = ("auto", "dataset", "image", "fixed", "batch")
#: Percentiles are computed on at most this many images, evenly spaced through the dataset.
PERCENTILE_SAMPLE = 20_000
#: ... and at most this many pixels per channel (the sort behind a percentile copies them).
PERCENTILE_PIXELS = 20_000 * 32 * 32


@dataclass(frozen=True)
class Intensity:
    """A resolved intensity mapping (never ``auto``).

    Attributes:
        mode: ``fixed``, ``dataset``, ``image`` or ``batch``.
        low, high: per-channel raw values mapped to 0 and 1 (empty for ``image``; for ``batch``, the
            whole dataset's, used where an image's batch is not given: thumbnails, the pixel t-SNE).
        percentiles: the percentiles ``low``/``high`` came from (``dataset`` and ``batch``).
        batch_names: ``batch``: the technical batches, in the order of the rows below.
        batch_low, batch_high: ``batch``: one per-channel low/high per technical batch.
    """

    mode: str
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    percentiles: tuple[float, float] | None = None
    batch_names: tuple[str, ...] = ()
    batch_low: tuple[tuple[float, ...], ...] = ()
    batch_high: tuple[tuple[float, ...], ...] = ()

    @property
    def per_image(self) -> bool:
        return self.mode == "image"

    def is_byte_range(self) -> bool:
        """Whether this is the plain 0-255 mapping of 8-bit images (medviz's RGB path)."""
        return self.mode == "fixed" and set(self.low) == {0.0} and set(self.high) == {255.0}

    @property
    def per_batch(self) -> bool:
        return self.mode == "batch"

    def batch_rows(self, batches) -> np.ndarray:
        """Each image's row of ``batch_low``/``batch_high`` from its technical batch's name (N,) ->
        int64 (N,); matched by name, so a subset or another order of images finds the right row."""
        where = {name: row for row, name in enumerate(self.batch_names)}
        values = [str(b) for b in batches]
        unknown = sorted({v for v in values if v not in where})
        if unknown:
            raise ValueError(
                f"technical batches without intensities of their own: {', '.join(unknown[:5])} "
                f"(known: {', '.join(self.batch_names[:5])}{' ...' if len(self.batch_names) > 5 else ''})"
            )
        return np.fromiter((where[v] for v in values), np.int64, len(values))

    def to_unit(self, images: np.ndarray, dtype: type = np.float32, rows: np.ndarray | None = None) -> np.ndarray:
        """Raw images (N, H, W, C) -> intensities in [0, 1] of ``dtype``, same shape.

        ``rows``: for ``batch``, each image's row of the per-batch ranges (:meth:`batch_rows`); without
        them the whole dataset's range is used.
        """
        x = images.astype(dtype)
        if self.per_image:
            low = x.min(axis=(1, 2), keepdims=True)
            high = x.max(axis=(1, 2), keepdims=True)
        elif self.per_batch and rows is not None:
            low = np.asarray(self.batch_low, dtype=dtype)[rows][:, None, None, :]
            high = np.asarray(self.batch_high, dtype=dtype)[rows][:, None, None, :]
        else:
            low = np.asarray(self.low, dtype=dtype)
            high = np.asarray(self.high, dtype=dtype)
        span = np.where(high > low, high - low, 1)
        return np.clip((x - low) / span, 0, 1).astype(dtype, copy=False)

    def describe(self) -> dict:
        """Plain values for ``metrics.json`` and the logs."""
        out: dict = {"mode": self.mode}
        if not self.per_image:
            out["low"] = [round(v, 4) for v in self.low]
            out["high"] = [round(v, 4) for v in self.high]
        if self.percentiles is not None:
            out["percentiles"] = list(self.percentiles)
        if self.per_batch:
            out["batches"] = {
                name: {"low": [round(v, 4) for v in lo], "high": [round(v, 4) for v in hi]}
                for name, lo, hi in zip(self.batch_names, self.batch_low, self.batch_high, strict=True)
            }
        return out


def byte_range(channels: int) -> Intensity:
    """The mapping of 8-bit images: 0 -> 0, 255 -> 1 in every channel."""
    return Intensity("fixed", (0.0,) * channels, (255.0,) * channels)


def sample_rows(n: int, limit: int = PERCENTILE_SAMPLE) -> np.ndarray:
    """At most ``limit`` row indices evenly spaced over ``n`` rows."""
    return np.arange(0, n, max(1, -(-n // limit)))


def dataset_percentiles(
    images: np.ndarray, percentiles: tuple[float, float], of_rows: np.ndarray | None = None
) -> Intensity:
    """Per-channel low/high percentiles of ``images`` (N, H, W, C) (of a sample when N is large);
    ``of_rows``: of those images only (sorted row indices)."""
    lo_p, hi_p = percentiles
    # At most PERCENTILE_PIXELS pixels per channel: 20,000 images of 32 px, fewer of larger ones.
    limit = max(1, min(PERCENTILE_SAMPLE, PERCENTILE_PIXELS // int(np.prod(images.shape[1:3]))))
    count = len(images) if of_rows is None else len(of_rows)
    rows = sample_rows(count, limit)
    sample = gather(images, rows if of_rows is None else of_rows[rows])
    channels = sample.shape[-1]
    flat = sample.reshape(-1, channels)
    low = np.percentile(flat, lo_p, axis=0)
    high = np.percentile(flat, hi_p, axis=0)
    # A channel that is constant below the high percentile would divide by zero: use its full range.
    flat_channels = high <= low
    if flat_channels.any():
        low = np.where(flat_channels, flat.min(axis=0), low)
        high = np.where(flat_channels, flat.max(axis=0), high)
    return Intensity("dataset", tuple(float(v) for v in low), tuple(float(v) for v in high), (lo_p, hi_p))


def fixed_range(value, channels: int) -> Intensity:
    """``dataset.intensity_range``: [low, high] for every channel, or one [low, high] per channel."""
    pairs = np.asarray(value, dtype=np.float64) if value is not None else None
    if pairs is None or pairs.ndim not in (1, 2) or pairs.shape[-1] != 2:
        raise ConfigError(
            f"dataset.normalise=fixed needs dataset.intensity_range=[low,high] (all channels) or "
            f"[[low,high], ...] (one per channel, {channels} here); got {value}"
        )
    if pairs.ndim == 1:
        pairs = np.tile(pairs, (channels, 1))
    if len(pairs) != channels:
        raise ConfigError(
            f"dataset.intensity_range gives {len(pairs)} ranges, but the images have {channels} channels: "
            "give one [low,high] per channel, or a single [low,high] for all"
        )
    if (pairs[:, 1] <= pairs[:, 0]).any():
        raise ConfigError(f"dataset.intensity_range: each high must be above its low; got {pairs.tolist()}")
    return Intensity("fixed", tuple(pairs[:, 0].tolist()), tuple(pairs[:, 1].tolist()))


def choose_intensity(
    images: np.ndarray, mode: str = "auto", percentiles=(0.1, 99.9), intensity_range=None
) -> Intensity:
    """Resolve ``dataset.normalise`` for ``images`` (N, H, W, C) of their stored dtype."""
    if mode not in MODES:
        raise ConfigError(f"dataset.normalise={mode} is not known; choose one of: {', '.join(MODES)}")
    channels = images.shape[-1]
    if mode == "auto":
        mode = "fixed" if images.dtype == np.uint8 else "dataset"
        if mode == "fixed":
            return byte_range(channels)
    if mode == "fixed":
        return (
            byte_range(channels)
            if intensity_range is None and images.dtype == np.uint8
            else (fixed_range(intensity_range, channels))
        )
    if mode == "image":
        return Intensity("image")
    # ``batch`` starts from the dataset's percentiles; the per-batch ranges follow once each image's
    # batch is known (:mod:`medviz.data.prepare.batch_intensity`).
    lo_p, hi_p = (float(p) for p in percentiles)
    if not 0 <= lo_p < hi_p <= 100:
        raise ConfigError(f"dataset.percentiles must be two values 0 <= low < high <= 100; got {list(percentiles)}")
    return dataset_percentiles(images, (lo_p, hi_p))
