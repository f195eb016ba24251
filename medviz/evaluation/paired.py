"""Paired differences over seeds with a bootstrap interval: does a setting beat another, seed for seed?

Two settings trained with the same seeds share their data order, initialisation and subset, so
their difference seed by seed varies far less than either setting on its own. The interval is the
percentile bootstrap of the mean difference (resampling seeds with replacement): with 5 seeds it
is coarse, but an interval that excludes 0 says the direction held on every resample.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: Resamples of the bootstrap; enough that the 2.5 / 97.5 percentiles are stable to 3 digits.
RESAMPLES = 10_000


@dataclass(frozen=True)
class PairedDifference:
    """Mean of (setting - reference) over the seeds both have, and its 95 % bootstrap interval."""

    mean: float
    low: float
    high: float
    seeds: tuple[int, ...]

    @property
    def direction(self) -> str:
        """``higher`` or ``lower`` when the interval excludes 0, else ``no clear difference``."""
        if self.low > 0:
            return "higher"
        if self.high < 0:
            return "lower"
        return "no clear difference"


def paired_difference(
    values: Mapping[int, float], reference: Mapping[int, float], resamples: int = RESAMPLES, seed: int = 0
) -> PairedDifference | None:
    """The paired difference ``values - reference`` over their common seeds (None: fewer than 2).

    Args:
        values, reference: seed -> metric, e.g. map kNN accuracy of aug=rot90 and aug=default.
        resamples: bootstrap resamples of the seeds.
        seed: the bootstrap's random seed (the same inputs always give the same interval).
    """
    seeds = tuple(sorted(set(values) & set(reference)))
    if len(seeds) < 2:
        return None
    diffs = np.array([values[s] - reference[s] for s in seeds], dtype=np.float64)
    picks = np.random.default_rng(seed).integers(0, len(diffs), size=(resamples, len(diffs)))
    low, high = np.percentile(diffs[picks].mean(axis=1), [2.5, 97.5])
    return PairedDifference(float(diffs.mean()), float(low), float(high), seeds)
