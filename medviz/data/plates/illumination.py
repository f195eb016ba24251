"""Illumination correction as Cell Painting pipelines do it: one smooth flat-field per plate and channel.

``dataset.illumination=plate`` computes each plate's functions from that plate's own fields, as
CellProfiler's CorrectIlluminationCalculate does in those pipelines (every field of the plate
averaged, then a large median filter, which follows the illumination and not the cells, however
bright they are), scaled to a mean of 1 so that dividing by it keeps the plate's average brightness.
``dataset.illumination=<folder>`` reads functions CellProfiler saved, one ``.npy`` per plate and
channel named ``<Plate>_Illum<Channel>.npy`` as public Cell Painting data ship them.
Crops are cut from the corrected field (:mod:`medviz.data.plates.field_reader`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medviz.data.plates.field_reader import FieldUnreadable, read_field
from medviz.data.plates.fields import Field
from medviz.errors import DataError

log = logging.getLogger("medviz")

#: The averaged field's median filter spans this share of its shorter side: far larger than a cell,
#: so within any window most pixels are background and only the illumination remains (a mean or
#: Gaussian filter would be pulled up by bright cells). A Gaussian of half the window's size then
#: smooths the median's steps.
SMOOTHING_SHARE = 1 / 4
#: The average is smoothed on a copy whose shorter side is at most this many pixels (the function
#: is smooth, so nothing is lost, and a 2-megapixel field is filtered in milliseconds).
SMOOTHING_SIDE = 128


def saved_function_name(plate: str, channel: str) -> str:
    """``<Plate>_Illum<Channel>.npy``, the name public Cell Painting data give CellProfiler's functions."""
    return f"{plate}_Illum{channel}.npy"


def saved_functions(folder: Path, plate: str, channels: Sequence[str]) -> tuple[str, ...]:
    """The saved function of each channel of ``plate`` in ``folder``; a missing one is refused, named."""
    if "/" in plate or "\\" in plate or plate in ("", ".", ".."):
        raise DataError(f"dataset.illumination={folder}: plate {plate!r} cannot name a file of that folder")
    paths = []
    for channel in channels:
        path = folder / saved_function_name(plate, channel)
        if not path.is_file():
            raise DataError(
                f"dataset.illumination={folder}: no {path.name} for plate {plate!r}, channel {channel} "
                f"(expected one <Plate>_Illum<Channel>.npy per plate and channel); or set dataset.illumination=plate "
                "to compute them from the plates' fields"
            )
        paths.append(str(path))
    return tuple(paths)


def smooth(average: np.ndarray) -> np.ndarray:
    """A large median filter of ``average`` (H, W), then a Gaussian, scaled to mean 1: (H, W) float32."""
    from scipy import ndimage

    height, width = average.shape
    step = max(1, min(height, width) // SMOOTHING_SIDE)
    small = average[: height - height % step, : width - width % step]
    small = small.reshape(small.shape[0] // step, step, small.shape[1] // step, step).mean(axis=(1, 3))
    window = max(3, int(min(small.shape) * SMOOTHING_SHARE) | 1)
    smoothed = ndimage.median_filter(small, size=window, mode="nearest")
    smoothed = ndimage.gaussian_filter(smoothed, window / 4, mode="nearest")
    full = ndimage.zoom(smoothed, (height / smoothed.shape[0], width / smoothed.shape[1]), order=1, mode="nearest")
    full = full[:height, :width]
    if full.shape != (height, width):  # zoom rounds the output size: pad the last row/column
        full = np.pad(full, ((0, height - full.shape[0]), (0, width - full.shape[1])), mode="edge")
    return (full / max(float(full.mean()), 1e-12)).astype(np.float32)


def plate_functions(
    fields: Sequence[Field], channels: Sequence[str], folder: Path, version: str, plate: str
) -> tuple[str, ...]:
    """The flat-field of each channel of one plate, from its ``fields``, kept as ``.npy`` files in ``folder``.

    ``version`` names the plate's content (its fields' files and versions): functions of another
    content are not reused. Fields are read one at a time (memory holds one field and the running sum).
    """
    stem = _safe(plate) + "-" + hashlib.sha256(version.encode()).hexdigest()[:12]
    paths = tuple(str(folder / f"{stem}_Illum{_safe(channel)}.npy") for channel in channels)
    if all(Path(p).is_file() for p in paths):
        return paths
    total: np.ndarray | None = None
    used = 0
    for field in fields:
        try:
            image = read_field(field.files, f"{field.key} ({field.where})").astype(np.float64)
        except (OSError, FieldUnreadable) as err:
            log.warning(f"illumination of plate {plate}: field {field.key} left out ({err})")
            continue
        if total is None:
            total = np.zeros(image.shape, np.float64)
        if image.shape != total.shape:
            log.warning(
                f"illumination of plate {plate}: field {field.key} left out (its size differs from the plate's)"
            )
            continue
        total += image
        used += 1
    if total is None:
        raise DataError(f"illumination of plate {plate}: none of its {len(fields)} fields could be read")
    folder.mkdir(parents=True, exist_ok=True)
    for c, path in enumerate(paths):
        tmp = Path(path).with_suffix(".partial.npy")
        np.save(tmp, smooth(total[..., c] / used))
        tmp.replace(path)
    log.info(f"illumination of plate {plate}: one flat-field per channel from its {used} fields")
    return paths


def _safe(name: str) -> str:
    """``name`` as a file name part: characters other than letters, digits, '.', '-' and '_' replaced."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:60] or "_"
