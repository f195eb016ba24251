"""MedMNIST (Yang et al. 2023) through the ``medmnist`` package: BloodMNIST, DermaMNIST, ...

Files: ``<root>/<flag>.npz`` (28 px) or ``<root>/<flag>_<size>.npz``, keys
``{train,val,test}_{images,labels}``, images uint8 (N, S, S, 3) or (N, S, S) for grayscale
flags, labels uint8 (N, 1). All official splits are concatenated in the fixed order
train, val, test (paper §4: training sees all images); ``split`` keeps each image's origin.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from medviz.data.arrays import ImageArrays
from medviz.data.dtypes import as_uint8
from medviz.data.errors import DataError

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


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images uint8 (N, S, S, 3), labels (N,), split tags (N,) from one MedMNIST npz."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in npz.files]
            if missing:
                raise DataError(
                    f"{path} is not a MedMNIST file: keys {sorted(npz.files)} lack {missing}. "
                    "Download the original file again."
                )
            images = [npz[f"{s}_images"] for s in SPLITS]
            labels = [npz[f"{s}_labels"] for s in SPLITS]
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
        raise DataError(f"{path} is truncated or not an npz file ({err}). Delete it and download it again.") from None
    for split_name, x, y in zip(SPLITS, images, labels, strict=True):
        if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] != 3):
            raise DataError(
                f"{path}: {split_name}_images has shape {x.shape}; expected RGB (N, S, S, 3) or grayscale (N, S, S) "
                "as MedMNIST files hold. Save the images with 3 channels or 1; medviz drops no channel silently"
            )
        if y.ndim == 0 or len(y) != len(x):
            raise DataError(
                f"{path}: {split_name}_images has {len(x)} images but {split_name}_labels has shape {y.shape}; "
                f"expected one label row per image, shape ({len(x)}, 1). Download the file again."
            )
    split = np.concatenate([np.full(len(x), s) for s, x in zip(SPLITS, images, strict=True)])
    images = as_uint8(np.concatenate(images), f"{path} ({', '.join(f'{s}_images' for s in SPLITS)})")
    if images.ndim == 3:  # grayscale flags: (N, S, S) -> RGB
        images = np.repeat(images[..., None], 3, axis=-1)
    # Multi-label flags (ChestMNIST: (N, 14)) are coloured by their first label.
    labels = np.concatenate([y.reshape(len(y), -1)[:, 0] for y in labels])
    return np.ascontiguousarray(images), labels.astype(np.int64), split


def load_medmnist(
    flag: str = "bloodmnist",
    size: int = 28,
    root: str | None = None,
    download: bool = False,
    binary: bool = False,
) -> ImageArrays:
    """Load all splits of a 2-D MedMNIST dataset.

    Args:
        flag: e.g. ``bloodmnist``, ``dermamnist``, ``pathmnist`` (any 2-D flag of medmnist).
        size: image side, one of 28, 64, 128, 224.
        root: folder with the npz files (default: ``$MEDVIZ_DATA`` or ``~/.medmnist``).
        download: fetch the file through medmnist when it is missing.
        binary: DermaMNIST only: melanocytic nevi vs other (the paper's 2 classes).
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
    images, labels, split = _read_npz(path)
    names = tuple(info["label"][str(i)] for i in range(len(info["label"])))
    if binary:
        if flag != "dermamnist":
            raise DataError("binary=true is DermaMNIST's 2-class variant (nevi vs other); other flags keep all classes")
        labels = (labels != DERMA_NEVI).astype(np.int64)
        names = (names[DERMA_NEVI], "other")
    return ImageArrays(images=images, labels=labels, class_names=names, name=flag, split=split)
