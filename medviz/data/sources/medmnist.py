"""MedMNIST (Yang et al. 2023) through the ``medmnist`` package: BloodMNIST, DermaMNIST, ...

Files: ``<root>/<flag>.npz`` (28 px) or ``<root>/<flag>_<size>.npz``, keys
``{train,val,test}_{images,labels}``, images uint8 (N, S, S, 3) or (N, S, S) for grayscale
flags, labels uint8 (N, 1). All official splits are concatenated in the fixed order
train, val, test (paper §4: training sees all images); ``split`` keeps each image's origin.
The images are copied block by block into the dataset's store (memory-mapped; a file of any size
is never loaded whole) the first time, and whenever the file changes.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from medviz.data.image_arrays import ImageArrays
from medviz.data.readers.dtypes import decided_on_first_use, uint8_conversion
from medviz.data.readers.npy_stream import NpyArray, NpyBlocks, arrays_value_range, npz_arrays
from medviz.errors import DataError
from medviz.store.array_blocks import ArrayPart, array_store_dir, file_version, store_arrays

SPLITS = ("train", "val", "test")
SIZES = (28, 64, 128, 224)
# DermaMNIST's label 5 is melanocytic nevi; the paper uses nevi vs the rest (2 classes).
DERMA_NEVI = 5


def data_root(root: str | None) -> Path:
    """The folder holding the npz files: ``root`` if given, else ``$MEDVIZ_DATA``, else ~/.medmnist."""
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("MEDVIZ_DATA", Path.home() / ".medmnist")).expanduser()


def npz_name(flag: str, size: int) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def _info(flag: str) -> dict:
    import medmnist

    if flag not in medmnist.INFO or not flag.endswith("mnist") or flag.endswith("3d"):
        names = sorted(f for f in medmnist.INFO if not f.endswith("3d"))
        raise DataError(f"unknown MedMNIST flag '{flag}'; 2-D flags are: {', '.join(names)}")
    return medmnist.INFO[flag]


def _download(flag: str, size: int, root: Path) -> None:
    import medmnist

    info = _info(flag)
    root.mkdir(parents=True, exist_ok=True)
    try:
        getattr(medmnist, info["python_class"])(split="train", root=str(root), size=size, download=True)
    except (RuntimeError, OSError) as err:
        url = info.get("url" if size == 28 else f"url_{size}", "the MedMNIST Zenodo record")
        raise DataError(
            f"could not download {npz_name(flag, size)} ({err.__class__.__name__}). Download it from "
            f"{url} and put it at {root / npz_name(flag, size)} (or set dataset.root / MEDVIZ_DATA "
            "to the folder that holds it)."
        ) from None


def _check_npz(path: Path) -> tuple[list[NpyArray], np.ndarray, np.ndarray]:
    """The three image arrays (from their headers), labels (N,) and split tags (N,) of a MedMNIST npz."""
    arrays = npz_arrays(path)
    missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in arrays]
    if missing:
        raise DataError(
            f"{path} is not a MedMNIST file: keys {sorted(arrays)} lack {missing}. Download the original file again."
        )
    images = [arrays[f"{s}_images"] for s in SPLITS]
    try:
        with np.load(path, allow_pickle=False) as npz:
            labels = [npz[f"{s}_labels"] for s in SPLITS]
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
        raise DataError(f"{path} is truncated or not an npz file ({err}). Delete it and download it again.") from None
    for split_name, x, y in zip(SPLITS, images, labels, strict=True):
        if len(x.shape) not in (3, 4) or (len(x.shape) == 4 and x.shape[-1] != 3):
            raise DataError(
                f"{path}: {split_name}_images has shape {x.shape}; expected RGB (N, S, S, 3) or grayscale (N, S, S) "
                "as MedMNIST files hold. Save the images with 3 channels or 1; medviz drops no channel silently"
            )
        if y.ndim == 0 or len(y) != x.shape[0]:
            raise DataError(
                f"{path}: {split_name}_images has {x.shape[0]} images but {split_name}_labels has shape {y.shape}; "
                f"expected one label row per image, shape ({x.shape[0]}, 1). Download the file again."
            )
    if len({(x.shape[1:], x.dtype) for x in images}) != 1:
        raise DataError(f"{path}: the splits' images differ in shape or dtype ({[x.shape for x in images]})")
    split = np.concatenate([np.full(x.shape[0], s) for s, x in zip(SPLITS, images, strict=True)])
    # Multi-label flags (ChestMNIST: (N, 14)) are coloured by their first label.
    labels = np.concatenate([y.reshape(len(y), -1)[:, 0] for y in labels]).astype(np.int64)
    return images, labels, split


def _stored_images(path: Path, flag: str, size: int, cache_dir: str | None) -> tuple[np.ndarray, np.ndarray, Path]:
    """The npz's images in its store (uint8 RGB (N, S, S, 3), memory-mapped), their source rows, and
    the store's generation (its statistics are kept beside it)."""
    arrays, _, _ = _check_npz(path)
    parts = [ArrayPart(a.member, a.shape[0], a.row_bytes, file_version(path)) for a in arrays]
    source = f"{path} ({', '.join(f'{s}_images' for s in SPLITS)})"
    store = array_store_dir("medmnist", flag, cache_dir, file=str(path.resolve()), size=size)
    to_uint8 = decided_on_first_use(
        lambda: uint8_conversion(arrays[0].dtype, source, lambda: arrays_value_range(arrays))
    )
    with NpyBlocks() as blocks:

        def read_block(payload: tuple[int, int, int]) -> np.ndarray:
            part, start, stop = payload
            images = to_uint8(blocks.rows(arrays[part], start, stop))
            return np.repeat(images[..., None], 3, axis=-1) if images.ndim == 3 else images  # grayscale -> RGB

        images, source_rows, generation = store_arrays(store, parts, read_block, str(path))
    return images, source_rows, store / f"generation-{generation}"


def load_medmnist(
    flag: str = "bloodmnist",
    size: int = 28,
    root: str | None = None,
    download: bool = False,
    binary: bool = False,
    cache_dir: str | None = None,
) -> ImageArrays:
    """Load all splits of a 2-D MedMNIST dataset.

    Args:
        flag: e.g. ``bloodmnist``, ``dermamnist``, ``pathmnist`` (any 2-D flag of medmnist).
        size: image side, one of 28, 64, 128, 224.
        root: folder with the npz files (default: ``$MEDVIZ_DATA`` or ``~/.medmnist``).
        download: fetch the file through medmnist when it is missing.
        binary: DermaMNIST only: melanocytic nevi vs other (the paper's 2 classes).
        cache_dir: where the store goes (default ``$MEDVIZ_CACHE`` or ~/.cache/medviz).
    """
    info = _info(flag)
    if size not in SIZES:
        raise DataError(f"MedMNIST size must be one of {SIZES}, got {size}")
    folder = data_root(root)
    path = folder / npz_name(flag, size)
    if not path.is_file():
        if not download:
            raise DataError(
                f"{path} not found. Put {npz_name(flag, size)} there (from the MedMNIST Zenodo record), "
                "set dataset.root=<folder> or MEDVIZ_DATA, or pass dataset.source.download=true."
            )
        _download(flag, size, folder)
    _, labels, split = _check_npz(path)
    images, source_rows, generation = _stored_images(path, flag, size, cache_dir)
    labels, split = labels[source_rows], split[source_rows]
    names = tuple(info["label"][str(i)] for i in range(len(info["label"])))
    if binary:
        if flag != "dermamnist":
            raise DataError("binary=true is DermaMNIST's 2-class variant (nevi vs other); other flags keep all classes")
        labels = (labels != DERMA_NEVI).astype(np.int64)
        names = (names[DERMA_NEVI], "other")
    return ImageArrays(images=images, labels=labels, class_names=names, name=flag, split=split, cache_file=generation)
