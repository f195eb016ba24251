"""Turning image arrays of other dtypes into the uint8 medviz trains on: deliberately, or not at all.

A plain ``astype(np.uint8)`` wraps or truncates: float images in [0, 1] become black {0, 1}
images and 16-bit values wrap around, and training then "succeeds" on garbage. Here every
conversion is one of a few that keep the picture, and is logged; anything else is refused with
the file, the dtype and the value range.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

import numpy as np

from medviz.errors import DataError

log = logging.getLogger("medviz")


@dataclass(frozen=True)
class ValueRange:
    """The smallest and largest value of an array, and whether every value is finite."""

    low: float
    high: float
    finite: bool


def value_range(blocks: Iterable[np.ndarray]) -> ValueRange:
    """The values' range over ``blocks`` of one array (read once, one block at a time)."""
    low, high, finite = np.inf, -np.inf, True
    for block in blocks:
        if block.size == 0:
            continue
        if block.dtype.kind == "f" and not np.isfinite(block).all():
            finite = False
            block = block[np.isfinite(block)]
            if block.size == 0:
                continue
        low, high = min(low, float(block.min())), max(high, float(block.max()))
    return ValueRange(low, high, finite)


Convert = Callable[[np.ndarray], np.ndarray]


def decided_on_first_use(decide: Callable[[], Convert]) -> Convert:
    """A conversion chosen by ``decide()`` when it is first applied: a store that is current converts
    nothing, so nothing is read to choose it."""
    chosen: list[Convert] = []

    def convert(images: np.ndarray) -> np.ndarray:
        if not chosen:
            chosen.append(decide())
        return chosen[0](images)

    return convert


def _unchanged(images: np.ndarray) -> np.ndarray:
    return images


def _numeric(kind: np.dtype) -> bool:
    return np.issubdtype(kind, np.floating) or np.issubdtype(kind, np.integer)


def uint8_conversion(kind: np.dtype, source: str, values: Callable[[], ValueRange]) -> Convert:
    """How images of ``kind`` become uint8, decided once for a whole array (and said once).

    * uint8: unchanged.
    * floats with every value in [0, 1]: scaled by 255 and rounded.
    * floats in [0, 255], or integers in [0, 255]: rounded / cast, values unchanged.
    * anything else (negative or larger values, NaN, booleans, complex): :class:`DataError`.

    Args:
        kind: the images' dtype.
        source: the file (and key) the array came from, for the messages.
        values: gives the whole array's :class:`ValueRange` (only called when the dtype needs it).
    """
    if kind == np.uint8:
        return _unchanged
    if not _numeric(kind):
        raise DataError(
            f"{source}: images are {kind}, which medviz cannot read as pixel values; save them as uint8 (0-255)"
        )
    found = values()
    if not found.finite:
        raise DataError(f"{source}: images are {kind} and contain NaN or infinite values; fix or drop those images")
    low, high = found.low, found.high
    said = f"{source}: images are {kind} with values {low:g} to {high:g}"
    floating = np.issubdtype(kind, np.floating)
    if floating and low >= 0 and high <= 1:
        log.warning(f"{said}: read as intensities in [0, 1] and scaled to 0-255 (uint8)")
        return lambda images: np.round(images * 255).astype(np.uint8)
    if low >= 0 and high <= 255:
        log.warning(f"{said}: read as 0-255 and stored as uint8 (values unchanged)")
        return (lambda images: np.round(images).astype(np.uint8)) if floating else (lambda x: x.astype(np.uint8))
    raise DataError(
        f"{said}, outside both [0, 1] and [0, 255]; medviz would have to guess how to scale them. Scale them "
        "yourself to 0-255 (uint8) or to [0, 1] (float), e.g. per channel from low and high percentiles, and save again"
    )


def as_uint8(images: np.ndarray, source: str) -> np.ndarray:
    """``images`` (any shape, e.g. (N, H, W, 3)) as uint8, converting only where the meaning is clear
    (:func:`uint8_conversion`)."""
    if images.size == 0 and images.dtype != np.uint8:
        raise DataError(f"{source}: images are {images.dtype} and empty; save them as uint8 (0-255)")
    return uint8_conversion(images.dtype, source, lambda: value_range([images]))(images)


def stored_conversion(kind: np.dtype, source: str, values: Callable[[], ValueRange], once: bool = True) -> Convert:
    """How images of ``kind`` become a dtype medviz stores, decided once for a whole array: uint8,
    uint16 and float32 as they are; others converted where no value changes (logged), or refused.

    * other unsigned/signed integers whose values all lie in 0-65535: uint16 (values unchanged);
    * float16 / float64 (or another byte order) with finite values: float32;
    * anything else (negative or larger integers, NaN, booleans, complex): :class:`DataError`.

    Args:
        values: gives the array's :class:`ValueRange` (only called when the dtype needs it).
        once: say a conversion once per dtype for all files (a folder's images), not every time.
    """
    say = partial(_say_once, str(kind)) if once else (lambda message: log.warning(message))
    if kind in (np.dtype(np.uint8), np.dtype(np.uint16)):
        return _unchanged
    if np.issubdtype(kind, np.floating):
        if not values().finite:
            raise DataError(f"{source}: {kind} image contains NaN or infinite values; fix or drop this image")
        if kind == np.dtype(np.float32):
            return _unchanged
        say(f"{source}: {kind} images are stored as float32")
        return lambda images: images.astype(np.float32)
    if np.issubdtype(kind, np.integer):
        found = values()
        low, high = int(found.low), int(found.high)
        if low >= 0 and high <= 65535:
            say(f"{source}: {kind} images (here {low} to {high}) are stored as uint16, values unchanged")
            return lambda images: images.astype(np.uint16)
        raise DataError(
            f"{source}: {kind} image with values {low} to {high}, outside 0-65535: medviz stores 8-bit, 16-bit or "
            "float images; rescale it (or save it as float32) and read it again"
        )
    raise DataError(
        f"{source}: {kind} pixels cannot be read as intensities; save the image as uint8, uint16 or float32"
    )


def as_stored(image: np.ndarray, source: str) -> np.ndarray:
    """``image`` in a dtype medviz stores (:func:`stored_conversion`)."""
    if image.size == 0 and image.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{source}: the image is empty")
    return stored_conversion(image.dtype, source, lambda: value_range([image]))(image)


_SAID: set[str] = set()


def _say_once(kind: str, message: str) -> None:
    """Log a conversion once per kind, not once per file of a large folder."""
    if kind not in _SAID:
        _SAID.add(kind)
        log.warning(f"{message} (said once for all such files)")
