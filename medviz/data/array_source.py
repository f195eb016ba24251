"""Arrays a user already has: ``dataset=arrays dataset.path=cells.npz`` (or ``.npy``).

An ``.npz`` holds ``images`` -- (N, H, W, C), (N, C, H, W) or (N, H, W), any of uint8, uint16,
float (other integer types are converted where no value changes, :func:`medviz.data.dtypes.as_stored`)
-- and optionally ``labels`` (N,) (integers, or strings that become class names), ``class_names``
and ``channel_names``. A ``.npy`` holds the images alone (an unlabelled map). Images are resized
to ``resize`` when it is set and differs; their values are never rescaled.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medviz.data.arrays import ImageArrays
from medviz.data.dtypes import as_stored
from medviz.data.errors import DataError
from medviz.data.images_io import resize as resize_image

log = logging.getLogger("medviz")

LAYOUTS = ("auto", "NHWC", "NCHW")
#: In ``auto`` layout, an axis this short next to the image axes holds the channels.
MAX_CHANNELS = 16


def to_nhwc(images: np.ndarray, source: str, layout: str = "auto") -> np.ndarray:
    """Images in any of the accepted layouts -> (N, H, W, C)."""
    if layout not in LAYOUTS:
        raise DataError(f"dataset.layout={layout} is not known; choose one of: {', '.join(LAYOUTS)}")
    if images.ndim == 3:
        return images[..., None]
    if images.ndim != 4:
        raise DataError(f"{source}: images must be (N, H, W, C), (N, C, H, W) or (N, H, W); got shape {images.shape}")
    if layout == "NHWC":
        return images
    if layout == "NCHW":
        return images.transpose(0, 2, 3, 1)
    _, a, b, c = images.shape
    # Square images (the usual crops): the axis that differs from the two equal ones holds the channels.
    if (a == b != c and c <= MAX_CHANNELS) or (c <= MAX_CHANNELS < min(a, b)):
        return images
    if (b == c != a and a <= MAX_CHANNELS) or (a <= MAX_CHANNELS < min(b, c)):
        log.info(f"{source}: images {images.shape} read as (N, C, H, W) with {a} channels")
        return images.transpose(0, 2, 3, 1)
    raise DataError(f"{source}: cannot tell the channel axis of images {images.shape}; set dataset.layout=NHWC or NCHW")


def _labels(archive, n: int, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    if "labels" not in archive:
        return np.full(n, -1, np.int64), ()
    raw = np.asarray(archive["labels"]).reshape(-1) if archive["labels"].ndim == 2 else np.asarray(archive["labels"])
    if raw.shape != (n,):
        raise DataError(
            f"{source}: 'labels' has shape {archive['labels'].shape} but there are {n} images; give one label per "
            "image (-1 for unlabelled), or leave 'labels' out for an unlabelled map"
        )
    if raw.dtype.kind in "US":
        names = tuple(sorted(set(raw.tolist())))
        return np.array([names.index(v) for v in raw.tolist()], np.int64), names
    if raw.dtype.kind not in "iu":
        raise DataError(f"{source}: 'labels' must be integers or strings, got {raw.dtype}")
    labels = raw.astype(np.int64)
    count = int(labels.max()) + 1 if (labels >= 0).any() else 0
    names = tuple(str(v) for v in archive["class_names"]) if "class_names" in archive else tuple(map(str, range(count)))
    if len(names) < count:
        raise DataError(f"{source}: labels go up to {count - 1} but 'class_names' has only {len(names)} names")
    return labels, names


def load_arrays(path: str, resize: int | None = None, layout: str = "auto") -> ImageArrays:
    """Load ``path`` (.npz with ``images`` [+ ``labels`` ...], or .npy of images)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"array file {file} does not exist; set dataset.path to an .npz or .npy file")
    if file.suffix == ".npy":
        images, archive = np.load(file, allow_pickle=False), {}
    elif file.suffix == ".npz":
        with np.load(file, allow_pickle=False) as npz:
            if "images" not in npz.files:
                raise DataError(f"{file} has no 'images' array (it has {', '.join(npz.files)})")
            archive = {key: npz[key] for key in npz.files}
        images = archive["images"]
    else:
        raise DataError(f"dataset=arrays reads .npz or .npy files, not {file.name}")
    images = as_stored(to_nhwc(images, str(file), layout), str(file))
    if len(images) == 0:
        raise DataError(f"{file}: 'images' is empty")
    labels, names = _labels(archive, len(images), str(file))
    if resize and images.shape[1:3] != (resize, resize):
        log.info(f"{file}: resizing {len(images)} images from {images.shape[1]}x{images.shape[2]} to {resize}x{resize}")
        images = np.stack([resize_image(image, resize) for image in images])
    channel_names = tuple(str(n) for n in archive["channel_names"]) if "channel_names" in archive else None
    return ImageArrays(
        images=np.ascontiguousarray(images),
        labels=labels,
        class_names=names,
        name=file.stem,
        channel_names=channel_names,
    )
