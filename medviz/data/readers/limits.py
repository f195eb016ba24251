"""How large one image may be before it is skipped instead of read: an image far larger than any
crop (a whole-slide mosaic, a decompression bomb) would otherwise stop a whole ingest, or take more
memory than the machine has."""

from __future__ import annotations

import os

#: PIL's decompression-bomb limit (2 x 89,478,485 pixels, about 0.5 GB as 8-bit RGB) unless
#: ``MEDVIZ_MAX_IMAGE_PIXELS`` says otherwise; read in every ingest worker, which inherit it.
DEFAULT_MAX_IMAGE_PIXELS = 2 * 89_478_485


class ImageTooLarge(ValueError):
    """One image over the pixel limit: skipped with a warning that names it (a ValueError, so the
    store's workers treat it as one unreadable file, never as the end of the ingest)."""


def max_image_pixels() -> int:
    value = os.environ.get("MEDVIZ_MAX_IMAGE_PIXELS", "")
    return int(value) if value.strip().isdigit() else DEFAULT_MAX_IMAGE_PIXELS


def check_image_size(path: object, width: int, height: int, channels: int = 3, itemsize: int = 1) -> None:
    """Raise :class:`ImageTooLarge` naming ``path`` when width x height exceeds the limit."""
    limit = max_image_pixels()
    pixels = int(width) * int(height)
    if pixels > limit:
        gigabytes = pixels * channels * itemsize / 2**30
        raise ImageTooLarge(
            f"{path}: {width} x {height} pixels is more than the {limit:,} medviz reads in one image (it would "
            f"take about {gigabytes:.1f} GB decoded); skipped -- tile it into smaller images, or set "
            f"MEDVIZ_MAX_IMAGE_PIXELS={pixels} to read it whole"
        )
