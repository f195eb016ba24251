"""Cutting one square crop per object from a field of view, as DeepProfiler does (its ``box_size``).

A crop is the ``box`` x ``box`` square of the field's own pixels centred on the object's centre
(rounded to the nearest pixel), resized to ``size`` x ``size`` for training, in the field's dtype
(16-bit stays 16-bit). An object whose box crosses the field's edge is dropped (``edge=drop``, the
default) or padded with the field's background level (``edge=pad``: each channel's median, which
is background in a field of sparse cells; zeros would make a dark frame no real image has).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviz.data.readers.images import resize
from medviz.errors import ConfigError

EDGES = ("drop", "pad")


@dataclass(frozen=True)
class CropSettings:
    """How crops are cut (``dataset.box``, ``dataset.size``, ``dataset.edge``, ``dataset.mask_objects``).

    Attributes:
        box: side of the square cut around each centre, in the field's pixels.
        size: side the crop is stored and trained at (bilinear with antialiasing when it differs).
        edge: ``drop`` objects whose box crosses the field's edge, or ``pad`` them.
        mask_objects: blank every pixel that is not the object's own (mask label) with the background level.
    """

    box: int
    size: int
    edge: str = "drop"
    mask_objects: bool = False

    def __post_init__(self) -> None:
        if self.box < 2 or self.size < 2:
            raise ConfigError(f"dataset.box={self.box} and dataset.size={self.size} must be at least 2 pixels")
        if self.edge not in EDGES:
            raise ConfigError(f"dataset.edge={self.edge} is not known; choose drop (the default) or pad")


def box_origins(centres: np.ndarray, box: int) -> np.ndarray:
    """Top-left corners (K, 2) int64 as (row, column) of the boxes around ``centres`` (K, 2) as (x, y)."""
    nearest = np.floor(np.asarray(centres, dtype=np.float64) + 0.5).astype(np.int64)
    return nearest[:, ::-1] - box // 2


def inside(centres: np.ndarray, shape: tuple[int, int], box: int) -> np.ndarray:
    """Whether each object's box (centres (K, 2) as x, y) lies wholly inside a field of ``shape`` (H, W): bool (K,)."""
    origins = box_origins(centres, box)
    height, width = shape
    return (
        (origins[:, 0] >= 0) & (origins[:, 1] >= 0) & (origins[:, 0] + box <= height) & (origins[:, 1] + box <= width)
    )


def background_level(field: np.ndarray) -> np.ndarray:
    """Each channel's median (C,) in the field's dtype: the background of a field of sparse cells."""
    sample = field[:: max(1, field.shape[0] // 256), :: max(1, field.shape[1] // 256)]  # ~65k pixels suffice
    level = np.median(sample.reshape(-1, field.shape[-1]), axis=0)
    return level.astype(field.dtype) if field.dtype != np.float32 else level.astype(np.float32)


def cut_crops(
    field: np.ndarray,
    centres: np.ndarray,
    settings: CropSettings,
    mask: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The crops (K, size, size, C) of ``field`` (H, W, C) around ``centres`` (K, 2) as (x, y), in its dtype.

    Boxes that cross the edge are filled with the background level where they leave the field (the
    caller has dropped them already under ``edge=drop``). With ``settings.mask_objects``, ``mask``
    (H, W) and each object's ``labels`` (K,), pixels of other labels and of the background are blanked.
    ``out``: an array (K, size, size, C) of the field's dtype to write the crops into (a worker's
    shared slot: no copy afterwards); returned.
    """
    box = settings.box
    height, width, channels = field.shape
    level = background_level(field)
    shape = (len(centres), settings.size, settings.size, channels)
    if out is not None and (out.shape != shape or out.dtype != field.dtype):
        raise ValueError(f"crops of {shape} {field.dtype} cannot be written into {out.shape} {out.dtype}")
    crops = out if out is not None else np.empty(shape, field.dtype)
    for k, (top, left) in enumerate(box_origins(centres, box)):
        crop = np.empty((box, box, channels), field.dtype)
        crop[:] = level
        rows = slice(max(top, 0), min(top + box, height))
        cols = slice(max(left, 0), min(left + box, width))
        if rows.start < rows.stop and cols.start < cols.stop:
            target = (slice(rows.start - top, rows.stop - top), slice(cols.start - left, cols.stop - left))
            crop[target] = field[rows, cols]
            if settings.mask_objects and mask is not None and labels is not None:
                own = np.zeros((box, box), bool)
                own[target] = mask[rows, cols] == labels[k]
                crop[~own] = level
        crops[k] = resize(crop, settings.size)
    return crops
