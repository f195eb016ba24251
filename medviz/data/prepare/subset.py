"""``dataset.n_images``: train on a seeded, class-stratified subset of any source.

Every source loads whole (all official splits); the subset is taken afterwards, so it means the
same for MedMNIST, Leukemia, PCam, CIFAR-10 and the user's folders, and a finished run's tools
rebuild exactly the images it trained on from its config.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from medviz.data.image_arrays import ImageArrays
from medviz.store.gather import gather

log = logging.getLogger("medviz")


def stratified_counts(labels: np.ndarray, n: int) -> dict[int, int]:
    """How many images of each label (-1, unlabelled, counts as one) a subset of ``n`` takes.

    Proportional to the label's share, rounded by largest remainder so the counts add up to ``n``;
    every label keeps at least one image when ``n`` allows it, so no class vanishes.
    """
    values, sizes = np.unique(labels, return_counts=True)
    floor_share = np.ones(len(values), dtype=np.int64) if n >= len(values) else np.zeros(len(values), np.int64)
    remaining = n - int(floor_share.sum())
    capacity = sizes - floor_share
    exact = capacity / capacity.sum() * remaining if capacity.sum() else np.zeros(len(values))
    counts = floor_share + np.floor(exact).astype(np.int64)
    leftover = n - int(counts.sum())
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    for i in order:
        if leftover == 0:
            break
        if counts[i] < sizes[i]:
            counts[i] += 1
            leftover -= 1
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def stratified_rows(labels: np.ndarray, n_images: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices of ``n_images`` of ``labels`` (N,), each class in its share (all rows when N <= n)."""
    if n_images >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    picked = [
        rng.choice(np.flatnonzero(labels == label), count, replace=False)
        for label, count in stratified_counts(labels, n_images).items()
        if count
    ]
    return np.sort(np.concatenate(picked))


def stratified_subset(data: ImageArrays, n_images: int, seed: int = 0) -> ImageArrays:
    """``n_images`` of ``data``, each class in its share, in dataset order; ``data`` itself when it has no more.

    The mean border colour of the whole source is kept where the source has it (the paper fills
    rotation corners with the dataset's average border colour).
    """
    if n_images >= len(data):  # nothing to take away (a preset's n_images on a smaller dataset): nothing to say
        return data
    index = stratified_rows(data.labels, n_images, seed)
    log.info(
        f"dataset.n_images={n_images}: a class-stratified subset of {data.name}'s {len(data)} images (seed {seed})"
    )
    return select_rows(data, index)


def select_rows(data: ImageArrays, rows: np.ndarray) -> ImageArrays:
    """``data``'s images ``rows`` (int (n,)) in that order, with their labels, splits, files and metadata."""
    return replace(
        data,
        images=gather(data.images, rows),  # read by offset when the images stream from a store
        labels=data.labels[rows],
        split=None if data.split is None else data.split[rows],
        files=None if data.files is None else [data.files[i] for i in rows],
        metadata=None if data.metadata is None else data.metadata.iloc[rows].reset_index(drop=True),
    )
