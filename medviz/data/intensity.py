"""How stored intensities (uint8, uint16 or float) become the [0, 1] values a network trains on.

Chosen per dataset with ``dataset.normalise`` (docs/datasets.md, "Fluorescence"):

* ``dataset``: one low/high pair per channel for the whole dataset, from percentiles
  (``dataset.percentiles``, default 0.1 / 99.9) of all its pixels or of a large sample. Absolute
  intensity stays comparable between images -- often the phenotype itself in fluorescence.
* ``image``: each image and channel scaled from its own minimum to its maximum. What readers
  that stretch every file do; it erases differences in absolute intensity between images.
* ``fixed``: a user-given range per channel (``dataset.intensity_range``).
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

MODES = ("auto", "dataset", "image", "fixed")
#: Percentiles are computed on at most this many images, evenly spaced through the dataset.
PERCENTILE_SAMPLE = 20_000
#: ... and at most this many pixels per channel (the sort behind a percentile copies them).
PERCENTILE_PIXELS = 20_000 * 32 * 32


@dataclass(frozen=True)
class Intensity:
    """A resolved intensity mapping (never ``auto``).

    Attributes:
        mode: ``fixed``, ``dataset`` or ``image``.
        low, high: per-channel raw values mapped to 0 and 1 (empty for ``image``).
        percentiles: the percentiles ``low``/``high`` came from (``dataset`` only).
    """

    mode: str
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    percentiles: tuple[float, float] | None = None

    @property
    def per_image(self) -> bool:
        return self.mode == "image"

    def is_byte_range(self) -> bool:
        """Whether this is the plain 0-255 mapping of 8-bit images (medviz's RGB path)."""
        return self.mode == "fixed" and set(self.low) == {0.0} and set(self.high) == {255.0}

    def to_unit(self, images: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """Raw images (N, H, W, C) -> intensities in [0, 1] of ``dtype``, same shape."""
        x = images.astype(dtype)
        if self.per_image:
            low = x.min(axis=(1, 2), keepdims=True)
            high = x.max(axis=(1, 2), keepdims=True)
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
        return out


def byte_range(channels: int) -> Intensity:
    """The mapping of 8-bit images: 0 -> 0, 255 -> 1 in every channel."""
    return Intensity("fixed", (0.0,) * channels, (255.0,) * channels)


def sample_rows(n: int, limit: int = PERCENTILE_SAMPLE) -> np.ndarray:
    """At most ``limit`` row indices evenly spaced over ``n`` rows."""
    return np.arange(0, n, max(1, -(-n // limit)))


def dataset_percentiles(images: np.ndarray, percentiles: tuple[float, float]) -> Intensity:
    """Per-channel low/high percentiles of ``images`` (N, H, W, C) (of a sample when N is large)."""
    lo_p, hi_p = percentiles
    # At most PERCENTILE_PIXELS pixels per channel: 20,000 images of 32 px, fewer of larger ones.
    limit = max(1, min(PERCENTILE_SAMPLE, PERCENTILE_PIXELS // int(np.prod(images.shape[1:3]))))
    rows = sample_rows(len(images), limit)
    sample = gather(images, rows)
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
    lo_p, hi_p = (float(p) for p in percentiles)
    if not 0 <= lo_p < hi_p <= 100:
        raise ConfigError(f"dataset.percentiles must be two values 0 <= low < high <= 100; got {list(percentiles)}")
    return dataset_percentiles(images, (lo_p, hi_p))
