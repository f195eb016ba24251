"""``dataset.normalise=batch``: each technical batch's images mapped to [0, 1] by that batch's own range.

Runs once each image's batch is known (after the metadata is joined), over the whole source, like
the dataset's percentiles; the ranges travel with the model (its preprocessing), matched to
images by the batch's name.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from medviz.data.image_arrays import ImageArrays
from medviz.data.intensity import PERCENTILE_SAMPLE, Intensity, dataset_percentiles
from medviz.errors import ConfigError

log = logging.getLogger("medviz")

#: Each technical batch's percentiles come from at least this many of its images (all, when fewer).
MIN_SAMPLE_PER_BATCH = 2000


def batch_values(data: ImageArrays) -> np.ndarray:
    """Each image's technical batch as text (N,); refused, with the key to set, without a batch column."""
    if data.batch_column is None or data.metadata is None:
        raise ConfigError(
            f"dataset.normalise=batch maps each technical batch by its own intensities, and dataset '{data.name}' "
            "has no batch column: name it with dataset.batch=<column> (e.g. Metadata_Plate)"
        )
    return data.metadata[data.batch_column].astype(str).to_numpy()


def per_batch_intensity(data: ImageArrays, percentiles: tuple[float, float]) -> ImageArrays:
    """``data`` with intensities per technical batch (mode ``batch``); the dataset-wide range stays for
    thumbnails and wherever an image's batch is not at hand."""
    values = batch_values(data)
    whole = data.scale()
    names = tuple(sorted(set(values.tolist())))
    per_batch = max(MIN_SAMPLE_PER_BATCH, PERCENTILE_SAMPLE // len(names))
    lows, highs = [], []
    for name in names:
        rows = np.flatnonzero(values == name)
        rows = rows[:: max(1, -(-len(rows) // per_batch))]
        found = dataset_percentiles(data.images, tuple(percentiles), rows)
        lows.append(found.low)
        highs.append(found.high)
    intensity = Intensity(
        "batch", whole.low, whole.high, tuple(float(p) for p in percentiles), names, tuple(lows), tuple(highs)
    )
    spread = np.asarray(highs).max(axis=0) / np.maximum(np.asarray(highs).min(axis=0), 1e-12)
    log.info(
        f"dataset.normalise=batch: intensities of each of {len(names)} technical batches ({data.batch_column}) "
        f"mapped by their own percentiles {list(percentiles)}; the brightest batch's high is "
        f"{', '.join(f'{v:.2f}x' for v in spread)} the darkest's (per channel)"
    )
    return replace(data, intensity=intensity, border_rgb=None)
