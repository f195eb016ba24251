"""Reading image files of any common kind into uint8 RGB arrays of one size."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medviz.data.dtypes import as_uint8

log = logging.getLogger("medviz")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def to_rgb_uint8(image: Image.Image, source: str = "image") -> Image.Image:
    """RGB, RGBA, grayscale, palette or 16-bit images -> 8-bit RGB (alpha dropped)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255 if high > low else np.zeros_like(array)
        image = Image.fromarray(scaled.astype(np.uint8))
    if image.mode == "F":  # 32-bit float: [0, 1] or [0, 255] intensities, anything else refused
        image = Image.fromarray(as_uint8(np.asarray(image), source))
    return image.convert("RGB")


def read_resized(path: Path, size: int) -> np.ndarray:
    """One file -> uint8 (size, size, 3); raises OSError/UnidentifiedImageError when unreadable."""
    with Image.open(path) as image:
        image.load()
        rgb = to_rgb_uint8(image, str(path))
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(rgb, dtype=np.uint8)


def read_many(paths: Iterable[Path], size: int, what: str) -> tuple[np.ndarray, list[Path]]:
    """Read and resize files, skipping unreadable ones with a warning.

    Returns the images uint8 (N, size, size, 3) and the paths that were read, in order.
    """
    from tqdm.auto import tqdm

    paths = list(paths)
    images, kept, skipped = [], [], []
    for path in tqdm(paths, desc=f"reading {what}", unit="img", disable=len(paths) < 500):
        try:
            images.append(read_resized(path, size))
            kept.append(path)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            skipped.append(path)
            log.warning(f"skipping unreadable image {path}: {err}")
    if skipped:
        log.warning(f"{what}: skipped {len(skipped)} unreadable of {len(paths)} images (see warnings above)")
    if not images:
        return np.empty((0, size, size, 3), np.uint8), []
    return np.stack(images), kept
