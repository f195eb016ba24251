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
