"""Reading image files of any common kind into arrays (H, W, C) of one size, channels and bit depth kept.

* PNG, JPEG, BMP (PIL): 8-bit images become RGB as they always did (grayscale repeated in three
  channels, palettes expanded, an alpha channel dropped with a log line); 16-bit and float
  grayscale stay one channel of uint16 / float32 -- never stretched.
* TIFF / OME-TIFF (tifffile, :mod:`medviz.data.readers.tiff`): every channel in its stored dtype; 8-bit
  grayscale or RGB TIFFs become RGB like the PNGs, so a folder of either reads the same.
* One image from several files (one per channel, ``dataset.channel_files``): each file one plane.

Resizing keeps the dtype: 8-bit RGB through PIL exactly as before, anything else channel by
channel in float (the same bilinear filter) and rounded back to its integer dtype.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medviz.data.readers.dtypes import as_stored
from medviz.data.readers.limits import ImageTooLarge, check_image_size
from medviz.data.readers.tiff import read_tiff
from medviz.errors import DataError

log = logging.getLogger("medviz")

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", *TIFF_SUFFIXES)
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
_said_alpha: set[str] = set()


def _open_checked(path: Path) -> Image.Image:
    """``Image.open`` (the header only), refused by medviz's own pixel limit, which a user can raise,
    instead of PIL's (whose error is no OSError and would stop a whole ingest)."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        image = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    try:
        check_image_size(path, *image.size, channels=len(image.getbands()))
    except ImageTooLarge:
        image.close()
        raise
    return image


def _read_with_pil(path: Path) -> np.ndarray:
    with _open_checked(path) as image:
        image.load()
        if image.mode.startswith("I;16"):
            return np.asarray(image).astype(np.uint16)[..., None]
        if image.mode in ("I", "F"):
            return np.asarray(image)[..., None]
        if image.mode in _ALPHA_MODES or "transparency" in image.info:
            folder = str(path.parent)
            if folder not in _said_alpha:  # once per folder
                _said_alpha.add(folder)
                log.info(
                    f"{path}: {image.mode} image: its alpha channel is dropped (and in every such file of {folder})"
                )
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)


def read_image(path: Path, as_photo: bool = True) -> np.ndarray:
    """One file -> (H, W, C) in its stored dtype (uint8, uint16 or float32).

    ``as_photo``: 8-bit grayscale becomes RGB (off for the files of one channel each).
    Raises OSError/UnidentifiedImageError when unreadable, DataError for a layout it refuses.
    """
    image = read_tiff(path) if path.suffix.lower() in TIFF_SUFFIXES else _read_with_pil(path)
    image = as_stored(image, str(path))
    if as_photo and image.dtype == np.uint8 and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=2)
    return image


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) -> (size, size, C), same dtype; bilinear with antialiasing (PIL)."""
    if image.shape[:2] == (size, size):
        return image
    if image.dtype == np.uint8 and image.shape[-1] == 3:
        rgb = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
        return np.asarray(rgb, dtype=np.uint8)
    planes = [
        np.asarray(
            Image.fromarray(image[..., c].astype(np.float32), mode="F").resize(
                (size, size), Image.Resampling.BILINEAR, reducing_gap=None
            )
        )
        for c in range(image.shape[-1])
    ]
    out = np.stack(planes, axis=-1)
    if image.dtype == np.float32:
        return out
    top = np.iinfo(image.dtype).max
    return np.clip(np.round(out), 0, top).astype(image.dtype)


def read_channels(paths: Sequence[Path]) -> np.ndarray:
    """One image from one file per channel: (H, W, len(paths)); each file must hold one plane."""
    planes = []
    for path in paths:
        plane = read_image(path, as_photo=False)
        if plane.shape[-1] != 1:
            raise DataError(
                f"{path}: a file of a channel-per-file image holds {plane.shape[-1]} channels; each must hold one"
            )
        planes.append(plane)
    shapes = {(p.shape, p.dtype) for p in planes}
    if len(shapes) > 1:
        raise DataError(
            f"the channel files {', '.join(map(str, paths))} differ in size or dtype: {sorted(map(str, shapes))}"
        )
    return np.concatenate(planes, axis=-1)


def read_resized(item: str | Path | Sequence[Path], size: int) -> np.ndarray:
    """A file (or one file per channel) -> (size, size, C) in its stored dtype."""
    image = read_image(Path(item)) if isinstance(item, str | Path) else read_channels(item)
    return resize(image, size)


def _kind(image: np.ndarray) -> str:
    return f"{image.shape[-1]} channel(s) of {image.dtype}"


def read_many(items: Iterable[Path | Sequence[Path]], size: int, what: str) -> tuple[np.ndarray, list]:
    """Read and resize files (or channel groups), skipping unreadable ones with a warning.

    Returns the images (N, size, size, C) in their stored dtype and the items that were read, in
    order. Images that disagree in channel count or dtype are an error naming examples of each.
    """
    from tqdm.auto import tqdm

    items = list(items)
    images, kept, skipped = [], [], []
    kinds: dict[str, list] = {}
    for item in tqdm(items, desc=f"reading {what}", unit="img", disable=len(items) < 500):
        try:
            image = read_resized(item, size)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            skipped.append(item)
            log.warning(f"skipping unreadable image {item}: {err}")
            continue
        kinds.setdefault(_kind(image), []).append(item)
        images.append(image)
        kept.append(item)
    if len(kinds) > 1:
        counts = Counter({kind: len(members) for kind, members in kinds.items()})
        parts = [f"{n} with {kind} (e.g. {_name(kinds[kind][0])})" for kind, n in counts.most_common()]
        raise DataError(
            f"{what}: the images disagree: {'; '.join(parts)}. A dataset needs one channel count and bit depth: "
            "convert or move the odd ones out"
        )
    if skipped:
        log.warning(f"{what}: skipped {len(skipped)} unreadable of {len(items)} images (see warnings above)")
    if not images:
        return np.empty((0, size, size, 3), np.uint8), []
    return np.stack(images), kept


def _name(item: Path | Sequence[Path]) -> str:
    return str(item) if isinstance(item, Path) else str(item[0])
