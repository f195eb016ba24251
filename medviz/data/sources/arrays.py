"""Arrays a user already has: ``dataset=arrays dataset.path=cells.npz`` (or ``.npy``).

An ``.npz`` holds ``images`` -- (N, H, W, C), (N, C, H, W) or (N, H, W), any of uint8, uint16,
float (other integer types are converted where no value changes, :func:`medviz.data.readers.dtypes.as_stored`)
-- and optionally ``labels`` (N,) (integers, or strings that become class names), ``class_names``
and ``channel_names``. A ``.npy`` holds the images alone (an unlabelled map). Images are resized
to ``resize`` when it is set and differs; their values are never rescaled. They are kept in the
array's store (block by block: a file larger than memory is never loaded whole).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medviz.data.image_arrays import ImageArrays
from medviz.data.readers.dtypes import decided_on_first_use, stored_conversion
from medviz.data.readers.images import resize as resize_image
from medviz.data.readers.npy_stream import NpyBlocks, arrays_value_range, npy_array, npz_arrays
from medviz.errors import DataError
from medviz.store.array_blocks import ArrayPart, array_store_dir, file_version, store_arrays

log = logging.getLogger("medviz")

LAYOUTS = ("auto", "NHWC", "NCHW")
#: In ``auto`` layout, an axis this short next to the image axes holds the channels.
MAX_CHANNELS = 16


def layout_of(shape: tuple[int, ...], source: str, layout: str = "auto") -> str:
    """Which of NHW (no channel axis), NHWC or NCHW images of ``shape`` are in."""
    if layout not in LAYOUTS:
        raise DataError(f"dataset.layout={layout} is not known; choose one of: {', '.join(LAYOUTS)}")
    if len(shape) == 3:
        return "NHW"
    if len(shape) != 4:
        raise DataError(f"{source}: images must be (N, H, W, C), (N, C, H, W) or (N, H, W); got shape {shape}")
    if layout != "auto":
        return layout
    _, a, b, c = shape
    # Square images (the usual crops): the axis that differs from the two equal ones holds the channels.
    if (a == b != c and c <= MAX_CHANNELS) or (c <= MAX_CHANNELS < min(a, b)):
        return "NHWC"
    if (b == c != a and a <= MAX_CHANNELS) or (a <= MAX_CHANNELS < min(b, c)):
        log.info(f"{source}: images {shape} read as (N, C, H, W) with {a} channels")
        return "NCHW"
    raise DataError(f"{source}: cannot tell the channel axis of images {shape}; set dataset.layout=NHWC or NCHW")


def in_nhwc(images: np.ndarray, layout: str) -> np.ndarray:
    """Images in ``layout`` (from :func:`layout_of`) -> (N, H, W, C)."""
    if layout == "NHW":
        return images[..., None]
    return images.transpose(0, 2, 3, 1) if layout == "NCHW" else images


def to_nhwc(images: np.ndarray, source: str, layout: str = "auto") -> np.ndarray:
    """Images in any of the accepted layouts -> (N, H, W, C)."""
    return in_nhwc(images, layout_of(images.shape, source, layout))


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


def load_arrays(
    path: str, resize: int | None = None, layout: str = "auto", cache_dir: str | None = None
) -> ImageArrays:
    """Load ``path`` (.npz with ``images`` [+ ``labels`` ...], or .npy of images) through its store.

    The images are copied block by block into the store the first time (and when the file changes),
    so an array larger than memory is never loaded whole; ``cache_dir`` is where the store goes
    (default ``$MEDVIZ_CACHE`` or ~/.cache/medviz).
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"array file {file} does not exist; set dataset.path to an .npz or .npy file")
    if file.suffix == ".npy":
        images, archive = npy_array(file), {}
    elif file.suffix == ".npz":
        arrays = npz_arrays(file)
        if "images" not in arrays:
            raise DataError(f"{file} has no 'images' array (it has {', '.join(arrays)})")
        images = arrays["images"]
        with np.load(file, allow_pickle=False) as npz:  # everything but the images: small
            archive = {key: npz[key] for key in arrays if key != "images"}
    else:
        raise DataError(f"dataset=arrays reads .npz or .npy files, not {file.name}")
    if images.shape[:1] == (0,):
        raise DataError(f"{file}: 'images' is empty")
    axes = layout_of(images.shape, str(file), layout)
    labels, names = _labels(archive, images.shape[0], str(file))
    height, width = (images.shape[1], images.shape[2]) if axes != "NCHW" else (images.shape[2], images.shape[3])
    target = resize if resize and (height, width) != (resize, resize) else None
    if target:
        log.info(f"{file}: resizing {images.shape[0]} images from {height}x{width} to {target}x{target}")
    store = array_store_dir("arrays", file.stem, cache_dir, file=str(file.resolve()), resize=target, layout=axes)
    part = ArrayPart("images", images.shape[0], images.row_bytes, file_version(file))
    convert = decided_on_first_use(
        lambda: stored_conversion(images.dtype, str(file), lambda: arrays_value_range([images]), once=False)
    )
    with NpyBlocks() as blocks:

        def read_block(payload: tuple[int, int, int]) -> np.ndarray:
            _, start, stop = payload
            block = convert(in_nhwc(blocks.rows(images, start, stop), axes))
            return np.stack([resize_image(image, target) for image in block]) if target else block

        stored, source_rows, generation = store_arrays(store, [part], read_block, str(file))
    channel_names = tuple(str(n) for n in archive["channel_names"]) if "channel_names" in archive else None
    return ImageArrays(
        images=stored,
        labels=labels[source_rows],
        class_names=names,
        name=file.stem,
        channel_names=channel_names,
        cache_file=store / f"generation-{generation}",
    )
