"""Writers of tiny datasets in each source's exact on-disk format (keys, layout, dtypes)."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
from PIL import Image


def rng_images(n: int, size: int, seed: int, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (n, size, size, channels) if channels > 1 else (n, size, size)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def write_medmnist_npz(root: Path, flag: str, n_classes: int, size: int = 28, gray: bool = False) -> Path:
    """``<root>/<flag>[_size].npz`` with medmnist's keys; 12/4/6 images in train/val/test."""
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i, (split, n) in enumerate((("train", 12), ("val", 4), ("test", 6))):
        arrays[f"{split}_images"] = rng_images(n, size, seed=i, channels=1 if gray else 3)
        arrays[f"{split}_labels"] = (np.arange(n) % n_classes).astype(np.uint8).reshape(n, 1)
    path = root / (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")
    np.savez(path, **arrays)
    return path


def write_tcia_tree(root: Path, counts: dict[str, int], size: int = 40) -> Path:
    """``<root>/AML-Cytomorphology/<CLS>/<CLS>_NNNN.tiff`` RGBA images, plus annotations.dat."""
    tree = root / "AML-Cytomorphology"
    lines = []
    for c, (name, n) in enumerate(counts.items()):
        (tree / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rgba = rng_images(1, size, seed=100 * c + i, channels=4)[0]
            rgba[..., 3] = 255
            file = tree / name / f"{name}_{i + 1:04d}.tiff"
            Image.fromarray(rgba).save(file)
            lines.append(f"{name}/{file.name} {name}")
    (root / "annotations.dat").write_text("\n".join(lines) + "\n")
    return root


def write_pcam(root: Path, sizes=(("train", 6), ("valid", 3), ("test", 3))) -> Path:
    """The six ``camelyonpatch_level_2_split_*_{x,y}.h5`` files with keys x and y."""
    root.mkdir(parents=True, exist_ok=True)
    for i, (split, n) in enumerate(sizes):
        with h5py.File(root / f"camelyonpatch_level_2_split_{split}_x.h5", "w") as f:
            f.create_dataset("x", data=rng_images(n, 96, seed=i), chunks=(1, 96, 96, 3))
        with h5py.File(root / f"camelyonpatch_level_2_split_{split}_y.h5", "w") as f:
            f.create_dataset("y", data=(np.arange(n) % 2).astype(np.uint8).reshape(n, 1, 1, 1))
    return root


def write_cifar10(root: Path, per_batch: int = 10) -> Path:
    """``<root>/cifar-10-batches-py/`` with data_batch_1..5, test_batch and batches.meta pickles."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ]
    for i, name in enumerate(names):
        data = rng_images(per_batch, 32, seed=i).transpose(0, 3, 1, 2).reshape(per_batch, -1)
        batch = {
            "data": data,
            "labels": [(i + j) % 10 for j in range(per_batch)],
            "batch_label": name,
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)
    meta = {
        "label_names": [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ]
    }
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle)
    return root


def write_image_folder(root: Path, classes=("a", "b"), per_class: int = 6) -> Path:
    """Class sub-folders of 8-bit images of mixed kinds and sizes: RGB png, jpg, RGBA tif, gray png, palette png.

    (16-bit and multi-channel images are fluorescence data, read with their channels kept:
    :mod:`tests.helpers.fluorescence_formats`.)
    """
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = 20 + 7 * i
            kind = i % 5
            pixels = rng_images(1, size, seed=10 * c + i, channels=4)[0]
            if kind == 0:
                Image.fromarray(pixels[..., :3]).save(folder / f"img{i}.png")
            elif kind == 1:
                Image.fromarray(pixels[..., :3]).save(folder / f"img{i}.jpg")
            elif kind == 2:
                Image.fromarray(pixels).save(folder / f"img{i}.tif")
            elif kind == 3:
                Image.fromarray(pixels[..., 0]).save(folder / f"img{i}.png")
            else:
                Image.fromarray(pixels[..., :3]).quantize(16).save(folder / f"img{i}.png")  # palette
    return root


def write_pngs(folder: Path, count: int, start: int = 0, size: int = 12, classes=("a", "b")) -> Path:
    """``count`` small RGB PNGs spread over class folders, each different (seeded by its number)."""
    for number in range(start, start + count):
        target = folder / classes[number % len(classes)]
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng_images(1, size, seed=number)[0]).save(target / f"img{number:05d}.png")
    return folder
