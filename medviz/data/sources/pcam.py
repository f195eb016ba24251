"""PatchCamelyon (Veeling et al. 2018): 327,680 histology patches of 96x96, 2 classes.

Files: ``camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5`` with keys ``x`` uint8
(N, 96, 96, 3) and ``y`` (N, 1, 1, 1). The images (~9 GB) do not fit in RAM on small machines,
so the first load copies them block by block into the dataset's store; training then reads
batches from its memory map through the page cache (or from RAM where it fits ``speed.ram_budget``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medviz.data.image_arrays import ImageArrays
from medviz.errors import DataError
from medviz.store.array_blocks import ArrayPart, array_store_dir, file_version, store_arrays

log = logging.getLogger("medviz")

SPLITS = ("train", "valid", "test")
CLASS_NAMES = ("no metastasis", "metastasis")


def pcam_file(root: Path, split: str, part: str) -> Path:
    return root / f"camelyonpatch_level_2_split_{split}_{part}.h5"


def _open(path: Path, key: str):
    import h5py

    if not path.is_file():
        raise DataError(
            f"{path} not found. Put the six PCam files camelyonpatch_level_2_split_{{train,valid,test}}_{{x,y}}.h5 "
            "(gunzipped) in one folder and set dataset.source.root to it."
        )
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"{path} is not a readable HDF5 file ({err}); download it again and gunzip it.") from None
    if key not in handle:
        handle.close()
        raise DataError(f"{path} has no dataset '{key}' (found {list(handle)}); is it the original PCam file?")
    return handle


def _check_shapes(path: Path, shape: tuple[int, ...], expected_tail: tuple[int, ...]) -> None:
    if tuple(shape[1:]) != expected_tail:
        raise DataError(f"{path}: expected shape (N, {', '.join(map(str, expected_tail))}), got {shape}")


def load_pcam(root: str, cache_dir: str | None = None, chunk: int | None = None) -> ImageArrays:
    """All three splits, in the order train, valid, test; images are a read-only memmap of the store.

    Args:
        root: folder with the six ``.h5`` files.
        cache_dir: where the store goes (default ``$MEDVIZ_CACHE`` or ~/.cache/medviz).
        chunk: patches copied per block while building the store (default: about 32 MB).
    """
    folder = Path(root).expanduser()
    xs = [pcam_file(folder, s, "x") for s in SPLITS]
    ys = [pcam_file(folder, s, "y") for s in SPLITS]
    for path in xs + ys:
        if not path.is_file():
            _open(path, "x")  # raises the 'not found' error with the fix
    labels, split, parts = [], [], []
    for name, x_path, y_path in zip(SPLITS, xs, ys, strict=True):
        with _open(x_path, "x") as hx, _open(y_path, "y") as hy:
            _check_shapes(x_path, hx["x"].shape, (96, 96, 3))
            if hx["x"].dtype != np.uint8:  # copied block by block: a cast would wrap values silently
                raise DataError(f"{x_path}: images are {hx['x'].dtype}; the original PCam files hold uint8 (0-255)")
            if len(hy["y"]) != len(hx["x"]):
                raise DataError(f"{y_path} has {len(hy['y'])} labels but {x_path} has {len(hx['x'])} images")
            labels.append(np.asarray(hy["y"]).reshape(-1).astype(np.int64))
            split.append(np.full(len(hx["x"]), name))
            parts.append(ArrayPart(f"{name}_x", len(hx["x"]), 96 * 96 * 3, file_version(x_path)))
    store = array_store_dir("pcam", "pcam", cache_dir, files=[str(p.resolve()) for p in xs])
    block_bytes = chunk * parts[0].row_bytes if chunk else None
    with _Blocks(xs) as blocks:
        images, source_rows, generation = store_arrays(store, parts, blocks.read, "PCam", block_bytes)
    return ImageArrays(
        images=images,
        labels=np.concatenate(labels)[source_rows],
        class_names=CLASS_NAMES,
        name="pcam",
        split=np.concatenate(split)[source_rows],
        cache_file=store / f"generation-{generation}",
    )


class _Blocks:
    """Blocks of the three image files, each file opened once while the store is built."""

    def __init__(self, xs: list[Path]) -> None:
        self.xs = xs
        self.handles: dict[int, object] = {}

    def __enter__(self) -> _Blocks:
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles.values():
            handle.close()

    def read(self, payload: tuple[int, int, int]) -> np.ndarray:
        """(part, start, stop) -> uint8 (stop - start, 96, 96, 3)."""
        part, start, stop = payload
        if part not in self.handles:
            self.handles[part] = _open(self.xs[part], "x")
        try:
            return np.asarray(self.handles[part]["x"][start:stop])
        except OSError as err:
            raise DataError(f"{self.xs[part]} could not be read ({err}); download it again and gunzip it.") from None
