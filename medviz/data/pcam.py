"""PatchCamelyon (Veeling et al. 2018): 327,680 histology patches of 96x96, 2 classes.

Files: ``camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5`` with keys ``x`` uint8
(N, 96, 96, 3) and ``y`` (N, 1, 1, 1). The images (~9 GB) do not fit in RAM on small machines,
so the first load copies them chunk by chunk into one memory-mappable ``.npy`` cache; training
then reads batches from it through the page cache.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medviz.data.arrays import BorderMean, ImageArrays
from medviz.data.cache import cache_key, default_cache_dir, load_npz, save_npz_atomic
from medviz.data.errors import DataError

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


def load_pcam(root: str, cache_dir: str | None = None, chunk: int = 4096) -> ImageArrays:
    """All three splits, in the order train, valid, test; images are a read-only memmap.

    Args:
        root: folder with the six ``.h5`` files.
        cache_dir: where the ``.npy`` image cache goes (default ``$MEDVIZ_CACHE``).
        chunk: patches copied per step while building the cache (bounds memory use).
    """
    folder = Path(root).expanduser()
    xs = [pcam_file(folder, s, "x") for s in SPLITS]
    ys = [pcam_file(folder, s, "y") for s in SPLITS]
    for path in xs + ys:
        if not path.is_file():
            _open(path, "x")  # raises the 'not found' error with the fix
    key = cache_key(files=[str(p.resolve()) for p in xs], sizes=[p.stat().st_size for p in xs])
    cache = Path(cache_dir or default_cache_dir())
    images_path = cache / f"pcam-{key}-images.npy"
    meta_path = cache / f"pcam-{key}-meta.npz"
    meta = load_npz(meta_path, ("labels", "split", "border"))
    if meta is None or not images_path.is_file():
        meta = _build_cache(xs, ys, images_path, meta_path, chunk)
    images = np.load(images_path, mmap_mode="r")
    return ImageArrays(
        images=images,
        labels=meta["labels"],
        class_names=CLASS_NAMES,
        name="pcam",
        split=meta["split"],
        border_rgb=meta["border"],
    )


def _build_cache(xs: list[Path], ys: list[Path], images_path: Path, meta_path: Path, chunk: int) -> dict:
    from tqdm.auto import tqdm

    labels, split, sizes = [], [], []
    for name, x_path, y_path in zip(SPLITS, xs, ys, strict=True):
        with _open(x_path, "x") as hx, _open(y_path, "y") as hy:
            _check_shapes(x_path, hx["x"].shape, (96, 96, 3))
            if hx["x"].dtype != np.uint8:  # copied block by block: a cast would wrap values silently
                raise DataError(f"{x_path}: images are {hx['x'].dtype}; the original PCam files hold uint8 (0-255)")
            if len(hy["y"]) != len(hx["x"]):
                raise DataError(f"{y_path} has {len(hy['y'])} labels but {x_path} has {len(hx['x'])} images")
            labels.append(np.asarray(hy["y"]).reshape(-1).astype(np.int64))
            split.append(np.full(len(hx["x"]), name))
            sizes.append(len(hx["x"]))
    total = sum(sizes)
    images_path.parent.mkdir(parents=True, exist_ok=True)
    partial = images_path.with_name(images_path.name + ".partial")
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(total, 96, 96, 3))
    offset = 0
    border = BorderMean()
    with tqdm(total=total, desc="caching PCam", unit="img") as bar:
        for x_path in xs:
            with _open(x_path, "x") as hx:
                for start in range(0, len(hx["x"]), chunk):
                    block = hx["x"][start : start + chunk]
                    out[offset : offset + len(block)] = block
                    border.add(block)
                    offset += len(block)
                    bar.update(len(block))
    out.flush()
    del out
    partial.replace(images_path)  # only a complete cache gets the real name
    meta = {
        "labels": np.concatenate(labels),
        "split": np.concatenate(split),
        "border": border.value(),
    }
    save_npz_atomic(meta_path, **meta)
    log.info(f"cached PCam images at {images_path}")
    return meta
