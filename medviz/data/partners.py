"""Cross-batch positives (weak supervision; Haslum et al. 2022): the second view of an image may be
another image of the same perturbation from another technical batch.

An image and its partner share the treatment and differ in plate, so pulling them together
teaches the network that the plate does not matter. It needs a column naming each image's
perturbation (``dataset.perturbation``: compound, siRNA, treatment), which the unsupervised
methods never read -- results with it are reported apart (docs/invariance.md).
"""

from __future__ import annotations

import numpy as np

#: Draws per image before it is its own partner (no image of its perturbation in another batch found).
TRIES = 8


class CrossBatchPartners:
    """Draws, for dataset images, a partner of the same perturbation from another technical batch.

    Args:
        perturbations: int (N,) each image's perturbation code (-1: none; such images keep themselves).
        batches: int (N,) each image's technical batch code.
        probability: share of images that get a partner other than themselves (when one exists).
        seed: the generator's seed (each draw advances it, so epochs differ and runs repeat).
    """

    def __init__(self, perturbations: np.ndarray, batches: np.ndarray, probability: float = 0.5, seed: int = 0) -> None:
        if not 0 <= probability <= 1:
            raise ValueError(f"cross-batch partner probability must be in [0, 1], got {probability}")
        self.perturbations = np.asarray(perturbations, dtype=np.int64)
        self.batches = np.asarray(batches, dtype=np.int64)
        self.probability = float(probability)
        self.rng = np.random.default_rng([seed, 5_813])
        order = np.argsort(self.perturbations, kind="stable")
        codes, starts, counts = np.unique(self.perturbations[order], return_index=True, return_counts=True)
        self._members = order  # images sorted by perturbation
        self._start = np.zeros(int(codes.max()) + 2 if len(codes) else 1, np.int64)
        self._count = np.zeros_like(self._start)
        valid = codes >= 0
        self._start[codes[valid]] = starts[valid]
        self._count[codes[valid]] = counts[valid]
        self.has_partner = self._partnered()

    def _partnered(self) -> np.ndarray:
        """bool (N,): whether an image's perturbation also occurs in another technical batch."""
        known = self.perturbations >= 0
        pairs = np.unique(np.stack([self.perturbations[known], self.batches[known]], axis=1), axis=0)
        spread = np.bincount(pairs[:, 0], minlength=len(self._start))
        out = np.zeros(len(self.perturbations), bool)
        out[known] = spread[self.perturbations[known]] > 1
        return out

    def draw(self, indices: np.ndarray) -> np.ndarray:
        """Each image's partner index (B,) for dataset ``indices`` (B,); an image without one is its own."""
        indices = np.asarray(indices, dtype=np.int64)
        partners = indices.copy()
        wanted = self.has_partner[indices] & (self.rng.random(len(indices)) < self.probability)
        todo = np.flatnonzero(wanted)
        for _ in range(TRIES):
            if not len(todo):
                break
            own = indices[todo]
            codes = self.perturbations[own]
            picks = self._members[self._start[codes] + self.rng.integers(0, self._count[codes])]
            found = self.batches[picks] != self.batches[own]
            partners[todo[found]] = picks[found]
            todo = todo[~found]
        return partners

    def share_partnered(self) -> float:
        """Share of images whose perturbation occurs in more than one technical batch."""
        return float(self.has_partner.mean())
