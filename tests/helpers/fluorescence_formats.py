"""Fluorescence files as microscopes and their software write them: 5-channel 16-bit TIFFs in each layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

LAYOUTS = ("channels_first", "channels_last", "multipage", "ome", "channel_files", "npz")
CHANNELS = 5
#: The names an OME-TIFF's metadata gives its channels (a Cell Painting set, with one name to escape).
OME_CHANNEL_NAMES = ("DNA", "ER", "RNA & <AGP>", "AGP", "Mito")


def cell_images(n: int, size: int = 16, channels: int = CHANNELS, seed: int = 0) -> np.ndarray:
    """uint16 (n, C, H, W): camera-like counts (offset ~100, signal up to ~4000), a bright spot per image."""
    rng = np.random.default_rng(seed)
    images = rng.normal(100, 10, (n, channels, size, size))
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cy, cx = rng.integers(3, size - 3, 2)
        spot = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 6.0)
        images[i] += spot * rng.uniform(500, 4000, (channels, 1, 1))
    return np.clip(np.round(images), 0, 65535).astype(np.uint16)


def write_fluorescence(root: Path, layout: str, per_class: int = 8, classes=("ctrl", "drug"), size: int = 16):
    """Write ``per_class`` 5-channel uint16 cells per class folder in ``layout``; returns (path, images (N, C, H, W)).

    For ``npz`` the path is the file (``images`` (N, H, W, C), ``labels``, ``class_names``).
    """
    images = cell_images(per_class * len(classes), size=size)
    root.mkdir(parents=True, exist_ok=True)
    if layout == "npz":
        path = root / "cells.npz"
        labels = np.repeat(np.arange(len(classes)), per_class)
        np.savez(path, images=images.transpose(0, 2, 3, 1), labels=labels, class_names=np.array(classes))
        return path, images
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(exist_ok=True)
        for i in range(per_class):
            image = images[c * per_class + i]
            stem = folder / f"cell{i:03d}"
            if layout == "channels_first":
                tifffile.imwrite(f"{stem}.tif", image)
            elif layout == "channels_last":
                tifffile.imwrite(
                    f"{stem}.tif", image.transpose(1, 2, 0), photometric="minisblack", planarconfig="contig"
                )
            elif layout == "multipage":
                with tifffile.TiffWriter(f"{stem}.tif") as tif:
                    for plane in image:
                        tif.write(plane, contiguous=False)
            elif layout == "ome":
                metadata = {"axes": "CYX", "Channel": {"Name": list(OME_CHANNEL_NAMES)}}
                tifffile.imwrite(f"{stem}.ome.tif", image, ome=True, metadata=metadata)
            elif layout == "channel_files":
                for channel, plane in enumerate(image):
                    tifffile.imwrite(folder / f"cell{i:03d}_w{channel + 1}.tif", plane)
            else:
                raise ValueError(layout)
    return root, images


CHANNEL_PATTERNS = [f"*_w{c + 1}.tif" for c in range(CHANNELS)]
