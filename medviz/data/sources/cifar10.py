"""CIFAR-10 through torchvision, for the paper's control on natural images (§5: rotations hurt)."""

from __future__ import annotations

import numpy as np

from medviz.data.image_arrays import ImageArrays
from medviz.data.sources.medmnist import data_root
from medviz.errors import DataError
from medviz.store.array_blocks import ArrayPart, array_store_dir, file_version, store_arrays


def load_cifar10(root: str | None = None, download: bool = False, cache_dir: str | None = None) -> ImageArrays:
    """Train then test split (60,000 images, 32x32), from torchvision's on-disk format.

    torchvision reads and checks the batch files (180 MB in all); the images are then kept in the
    dataset's store like every other source's (memory-mapped, statistics kept per content).

    Args:
        root: folder holding ``cifar-10-batches-py/`` (default ``$MEDVIZ_DATA`` or ~/.medmnist).
        download: fetch the archive through torchvision when missing.
        cache_dir: where the store goes (default ``$MEDVIZ_CACHE`` or ~/.cache/medviz).
    """
    from torchvision.datasets import CIFAR10

    folder = data_root(root)
    parts = []
    for train in (True, False):
        try:
            parts.append(CIFAR10(str(folder), train=train, download=download))
        except RuntimeError as err:
            raise DataError(
                f"CIFAR-10 not found or corrupted under {folder} ({err}). Put the extracted "
                f"cifar-10-batches-py/ folder there, or pass dataset.source.download=true."
            ) from None
    labels = np.concatenate([np.asarray(p.targets) for p in parts]).astype(np.int64)
    split = np.concatenate([np.full(len(p.data), "train" if i == 0 else "test") for i, p in enumerate(parts)])
    base = folder / CIFAR10.base_folder
    files = [[base / name for name, _ in (p.train_list if p.train else p.test_list)] for p in parts]
    pieces = [
        ArrayPart(name, len(p.data), p.data[0].nbytes, file_version(*f))
        for name, p, f in zip(("train", "test"), parts, files, strict=True)
    ]
    store = array_store_dir("cifar10", "cifar10", cache_dir, folder=str(base.resolve()))

    def read_block(payload: tuple[int, int, int]) -> np.ndarray:
        part, start, stop = payload
        return parts[part].data[start:stop]

    images, source_rows, generation = store_arrays(store, pieces, read_block, str(base))
    return ImageArrays(
        images=images,
        labels=labels[source_rows],
        class_names=tuple(parts[0].classes),
        name="cifar10",
        split=split[source_rows],
        cache_file=store / f"generation-{generation}",
    )
