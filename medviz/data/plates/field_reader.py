"""Reading one field of view and cutting all its crops: what the store's worker processes run.

Each field's files are opened once per ingest and every crop of the field is cut from that one
read (hand-written cropping scripts often open the field again for every object). The reader is a
module-level function of a picklable payload, so the store's spawned workers can run it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from medviz.data.plates.crops import CropSettings, cut_crops
from medviz.data.readers.images import TIFF_SUFFIXES, read_channels, read_image
from medviz.errors import DataError


class FieldUnreadable(ValueError):
    """One field that cannot be cut (its channels disagree, its mask does not fit): a ValueError, so
    the store skips that field with a warning naming it and goes on with the rest."""


class FieldPayload(NamedTuple):
    """What a worker needs to cut one field's crops.

    Attributes:
        where: the field as messages name it (its key and table row).
        files: one file per channel (or one file holding every channel).
        centres: (K, 2) float64, the objects' centres as (x, y) pixels, in store row order.
        settings: box, size, edge and masking.
        mask: the field's label image, when objects are masked; labels: (K,) each object's label in it.
        illumination: one flat-field ``.npy`` per channel to divide by, or None.
    """

    where: str
    files: tuple[str, ...]
    centres: np.ndarray
    settings: CropSettings
    mask: str | None = None
    labels: np.ndarray | None = None
    illumination: tuple[str, ...] | None = None


def read_field(files: tuple[str, ...], where: str) -> np.ndarray:
    """A field (H, W, C) in its stored dtype from one file per channel (or one multi-channel file)."""
    try:
        if len(files) == 1:
            return read_image(Path(files[0]), as_photo=False)
        return read_channels([Path(f) for f in files])
    except DataError as err:  # one field's problem: skipped and named, the ingest goes on
        raise FieldUnreadable(f"{where}: {err}") from err


def read_label_image(path: str, shape: tuple[int, int], where: str) -> np.ndarray:
    """A label image (H, W) of integers; refused when its shape is not its field's."""
    labels = read_image(Path(path), as_photo=False)
    if labels.shape[-1] != 1 or labels.dtype == np.float32 and not np.all(labels == np.round(labels)):
        raise FieldUnreadable(f"{where}: {path} is not a label image (one channel of whole numbers)")
    if labels.shape[:2] != shape:
        raise FieldUnreadable(
            f"{where}: the label image {path} is {labels.shape[1]}x{labels.shape[0]} px but its field is "
            f"{shape[1]}x{shape[0]} px; pair each field with its own mask"
        )
    return labels[..., 0].astype(np.int64)


@lru_cache(maxsize=64)
def _flat_field(path: str) -> np.ndarray:
    try:
        function = np.load(path, allow_pickle=False)  # never unpickles: a flat-field is numbers only
    except (OSError, ValueError) as err:
        raise FieldUnreadable(f"{path}: not an illumination function saved as plain numbers ({err})") from err
    if function.ndim != 2 or function.dtype.kind not in "fiu":
        raise FieldUnreadable(
            f"{path}: an illumination function must be one 2-D array of numbers, got {function.shape}"
        )
    return function.astype(np.float32)


def corrected(field: np.ndarray, functions: tuple[str, ...], where: str) -> np.ndarray:
    """``field`` (H, W, C) divided by one illumination function per channel, back in its dtype (clipped)."""
    if len(functions) != field.shape[-1]:
        raise FieldUnreadable(f"{where}: {len(functions)} illumination functions for {field.shape[-1]} channels")
    out = np.empty(field.shape, np.float32)
    for c, path in enumerate(functions):
        function = _flat_field(path)
        if function.shape != field.shape[:2]:
            raise FieldUnreadable(
                f"{where}: the illumination function {path} is {function.shape[1]}x{function.shape[0]} px but the "
                f"field is {field.shape[1]}x{field.shape[0]} px"
            )
        out[..., c] = field[..., c] / np.maximum(function, 1e-6)
    if field.dtype == np.float32:
        return out
    top = np.iinfo(field.dtype).max
    return np.clip(np.round(out), 0, top).astype(field.dtype)


def read_field_crops(payload: FieldPayload, out: np.ndarray | None = None) -> np.ndarray:
    """Every crop (K, size, size, C) of one field, in its stored dtype: one read of its files.

    ``out``: where to write them when it is of the field's dtype and the crops' shape (else a new array).
    """
    field = read_field(payload.files, payload.where)
    if payload.illumination is not None:
        field = corrected(field, payload.illumination, payload.where)
    mask = None
    if payload.mask is not None:
        mask = read_label_image(payload.mask, field.shape[:2], payload.where)
    size, channels = payload.settings.size, field.shape[-1]
    fits = out is not None and out.dtype == field.dtype and out.shape == (len(payload.centres), size, size, channels)
    return cut_crops(field, payload.centres, payload.settings, mask, payload.labels, out if fits else None)


def field_shape(path: str) -> tuple[int, int]:
    """(height, width) of an image file from its header alone (no pixels decoded)."""
    if Path(path).suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                return int(page.imagelength), int(page.imagewidth)
        except (tifffile.TiffFileError, IndexError, ValueError) as err:
            raise FieldUnreadable(f"{path}: not a readable TIFF ({err})") from err
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return int(image.height), int(image.width)
    except UnidentifiedImageError as err:
        raise FieldUnreadable(f"{path}: not a readable image ({err})") from err
