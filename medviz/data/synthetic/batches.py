"""Planted technical batches for the built-in sets: known plate or stain effects to measure against.

A real screen's strongest structure is often technical: each plate stained a little differently,
imaged a little out of focus, with a camera offset of its own. ``dataset.batches=<n>`` splits a
built-in set into n batches (independent of the classes, equal sizes, seeded) and gives each its
own effect, scaled by ``dataset.batch_strength`` (0: none; 1: strong):

* 8-bit RGB stains (synthblood): each stain's amount is scaled and shifted in optical density, as
  staining time and reagent lots do to H&E and Giemsa (Tellez et al. 2019 model stain variation
  the same way), and some batches are blurred (focus).
* fluorescence (synthcells): per-channel gain and offset (lamp, exposure, camera), bleed-through of
  each channel into the next, and blur.

The loader returns the batch of every image in its metadata (column ``batch``), so maps can be
coloured by it and the batch-mixing metrics run with no table at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from medviz.errors import ConfigError

#: The metadata column of the planted batches.
BATCH_COLUMN = "batch"


@dataclass(frozen=True)
class BatchEffect:
    """One batch's effect: per-channel ``gain`` and ``offset`` (fractions of full scale; in optical
    density for stains), ``bleed`` (share of the previous channel added to each), ``blur`` (pixels)."""

    gain: np.ndarray
    offset: np.ndarray
    bleed: float
    blur: float


def batch_effects(n_batches: int, channels: int, strength: float, seed: int) -> list[BatchEffect]:
    """``n_batches`` random effects for images of ``channels`` channels, scaled by ``strength`` in [0, 1]."""
    rng = np.random.default_rng([seed, 7_211])  # its own stream: the images themselves stay those of the seed
    return [
        BatchEffect(
            gain=np.exp(rng.normal(0, 0.35 * strength, channels)),
            offset=rng.normal(0, 0.08 * strength, channels),
            bleed=float(rng.uniform(0, 0.15 * strength)),
            blur=float(rng.choice([0.0, 1.2 * strength])),
        )
        for _ in range(n_batches)
    ]


def assign_batches(n_images: int, n_batches: int, seed: int) -> np.ndarray:
    """Each image's batch (int (N,)): equal shares, in a seeded order independent of the classes."""
    rng = np.random.default_rng([seed, 3_517])
    return rng.permutation(np.arange(n_images) % n_batches).astype(np.int64)


def plant_batches(
    images: np.ndarray,
    n_batches: int,
    strength: float,
    seed: int,
    stain: bool,
    classes: tuple[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """``images`` (N, H, W, C) uint8 or uint16 with planted batch effects, and their metadata table
    (columns ``index`` and ``batch``, category ``batch1`` ... ``batch<n>``).

    ``stain``: effects in optical density (8-bit brightfield stains), else on intensities (fluorescence).
    ``classes``: (column, each image's class name (N,)) -- kept in the table too, so that a
    perturbation column exists (``dataset.perturbation``: cross-batch positives, docs/invariance.md).
    """
    if n_batches < 1 or n_batches > len(images):
        raise ConfigError(f"dataset.batches={n_batches}: give 0 (none) or 1 to {len(images)} (the images)")
    if not 0 <= strength <= 1:
        raise ConfigError(f"dataset.batch_strength={strength}: give a number from 0 (no effect) to 1 (strong)")
    codes = assign_batches(len(images), n_batches, seed)
    effects = batch_effects(n_batches, images.shape[-1], strength, seed)
    full = float(np.iinfo(images.dtype).max)
    out = np.empty_like(images)
    for code, effect in enumerate(effects):
        rows = np.flatnonzero(codes == code)
        unit = images[rows].astype(np.float32) / full
        changed = _stained(unit, effect) if stain else _imaged(unit, effect)
        if effect.blur > 0:
            changed = gaussian_filter(changed, sigma=(0, effect.blur, effect.blur, 0), mode="nearest")
        out[rows] = np.round(np.clip(changed, 0, 1) * full).astype(images.dtype)
    names = pd.Categorical([f"batch{c + 1}" for c in codes], categories=[f"batch{i + 1}" for i in range(n_batches)])
    table = pd.DataFrame({"index": np.arange(len(images), dtype=np.int64), BATCH_COLUMN: names})
    if classes is not None:
        table[classes[0]] = pd.Categorical(classes[1])
    return out, table


def _stained(unit: np.ndarray, effect: BatchEffect) -> np.ndarray:
    """Scale and shift each channel's optical density (-log transmitted light), then back to light."""
    density = -np.log(np.clip(unit, 1 / 255, 1))
    density = density * effect.gain + effect.offset
    return np.exp(-np.maximum(density, 0))


def _imaged(unit: np.ndarray, effect: BatchEffect) -> np.ndarray:
    """Gain and offset per channel, and each channel bleeding into the next."""
    bled = unit.copy()
    bled[..., 1:] += effect.bleed * unit[..., :-1]
    return bled * effect.gain + np.maximum(effect.offset, 0) * 0.5
