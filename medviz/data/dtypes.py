"""Turning image arrays of other dtypes into the uint8 medviz trains on: deliberately, or not at all.

A plain ``astype(np.uint8)`` wraps or truncates: float images in [0, 1] become black {0, 1}
images and 16-bit values wrap around, and training then "succeeds" on garbage. Here every
conversion is one of a few that keep the picture, and is logged; anything else is refused with
the file, the dtype and the value range.
"""

from __future__ import annotations

import logging

import numpy as np

from medviz.data.errors import DataError

log = logging.getLogger("medviz")


def as_uint8(images: np.ndarray, source: str) -> np.ndarray:
    """``images`` as uint8, converting only where the meaning is clear.

    * uint8: unchanged.
    * floats with every value in [0, 1]: scaled by 255 and rounded.
    * floats in [0, 255], or integers in [0, 255]: rounded / cast, values unchanged.
    * anything else (negative or larger values, NaN, booleans, complex): :class:`DataError`.

    Args:
        images: any shape, e.g. (N, H, W, 3).
        source: the file (and key) the array came from, for the messages.
    """
    if images.dtype == np.uint8:
        return images
    kind = images.dtype
    if images.size == 0 or not (np.issubdtype(kind, np.floating) or np.issubdtype(kind, np.integer)):
        raise DataError(
            f"{source}: images are {kind}, which medviz cannot read as pixel values; save them as uint8 (0-255)"
        )
    if np.issubdtype(kind, np.floating) and not np.isfinite(images).all():
        raise DataError(f"{source}: images are {kind} and contain NaN or infinite values; fix or drop those images")
    low, high = float(images.min()), float(images.max())
    found = f"{source}: images are {kind} with values {low:g} to {high:g}"
    if np.issubdtype(kind, np.floating) and low >= 0 and high <= 1:
        log.warning(f"{found}: read as intensities in [0, 1] and scaled to 0-255 (uint8)")
        return np.round(images * 255).astype(np.uint8)
    if low >= 0 and high <= 255:
        log.warning(f"{found}: read as 0-255 and stored as uint8 (values unchanged)")
        return np.round(images).astype(np.uint8) if np.issubdtype(kind, np.floating) else images.astype(np.uint8)
    raise DataError(
        f"{found}, outside both [0, 1] and [0, 255]; medviz would have to guess how to scale them. Scale them "
        "yourself to 0-255 (uint8) or to [0, 1] (float), e.g. per channel from low and high percentiles, and save again"
    )


def as_stored(image: np.ndarray, source: str) -> np.ndarray:
    """``image`` in a dtype medviz stores: uint8, uint16 and float32 as they are; others converted
    where no value changes (logged), or refused.

    * other unsigned/signed integers whose values all lie in 0-65535: uint16 (values unchanged);
    * float16 / float64 with finite values: float32;
    * anything else (negative or larger integers, NaN, booleans, complex): :class:`DataError`.
    """
    kind = image.dtype
    if kind in (np.uint8, np.uint16, np.float32):
        if kind == np.float32 and not np.isfinite(image).all():
            raise DataError(f"{source}: float32 image contains NaN or infinite values; fix or drop this image")
        return image
    if np.issubdtype(kind, np.floating):
        if not np.isfinite(image).all():
            raise DataError(f"{source}: {kind} image contains NaN or infinite values; fix or drop this image")
        _say_once(str(kind), f"{source}: {kind} images are stored as float32")
        return image.astype(np.float32)
    if np.issubdtype(kind, np.integer) and image.size:
        low, high = int(image.min()), int(image.max())
        if low >= 0 and high <= 65535:
            _say_once(
                str(kind), f"{source}: {kind} images (here {low} to {high}) are stored as uint16, values unchanged"
            )
            return image.astype(np.uint16)
        raise DataError(
            f"{source}: {kind} image with values {low} to {high}, outside 0-65535: medviz stores 8-bit, 16-bit or "
            "float images; rescale it (or save it as float32) and read it again"
        )
    raise DataError(
        f"{source}: {kind} pixels cannot be read as intensities; save the image as uint8, uint16 or float32"
    )


_SAID: set[str] = set()


def _say_once(kind: str, message: str) -> None:
    """Log a conversion once per kind, not once per file of a large folder."""
    if kind not in _SAID:
        _SAID.add(kind)
        log.warning(f"{message} (said once for all such files)")
