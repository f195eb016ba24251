"""PatchCamelyon (Veeling et al. 2018): 327,680 histology patches of 96x96, 2 classes.

Files: ``camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5`` with keys ``x`` uint8
(N, 96, 96, 3) and ``y`` (N, 1, 1, 1). Where the three ``..._meta.csv`` files lie beside them (an
unnamed index column, coord_y, coord_x, tumor_patch, center_tumor_patch, wsi), every patch gets
them as metadata, plus its Camelyon16 slide's hospital (``centre``): the stain batch the paper saw
in its PCam map ("shades of violet"; ``dataset.batch=centre``, docs/invariance.md).

The images (~9 GB) do not fit in RAM on small machines,
so the first load copies them block by block into the dataset's store; training then reads
batches from its memory map through the page cache (or from RAM where it fits ``speed.ram_budget``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from medviz.data.image_arrays import ImageArrays
from medviz.errors import DataError
from medviz.store.array_blocks import ArrayPart, array_store_dir, file_version, store_arrays

log = logging.getLogger("medviz")

SPLITS = ("train", "valid", "test")
CLASS_NAMES = ("no metastasis", "metastasis")
META_COLUMNS = ["coord_y", "coord_x", "tumor_patch", "center_tumor_patch", "wsi"]

#: Camelyon16's training slides by hospital (Bejnordi et al. 2017): Radboud University Medical Center
#: (Nijmegen) scanned normal 1-100 and tumour 1-70, University Medical Center Utrecht normal 101-160
#: and tumour 71-110. Test slides carry no hospital in PCam's tables.
RADBOUD, UTRECHT = "RUMC", "UMCU"
_CENTRES = {"normal": ((1, 100, RADBOUD), (101, 160, UTRECHT)), "tumor": ((1, 70, RADBOUD), (71, 110, UTRECHT))}
_SLIDE = re.compile(r"camelyon16_train_(normal|tumor)_(\d+)")


def camelyon16_centre(wsi: str) -> str | None:
    """The hospital of a Camelyon16 training slide (``camelyon16_train_normal_001``); None for others."""
    found = _SLIDE.fullmatch(str(wsi))
    if found is None:
        return None
    number = int(found.group(2))
    for low, high, centre in _CENTRES[found.group(1)]:
        if low <= number <= high:
            return centre
    return None


def pcam_metadata(folder: Path, counts: list[int]) -> pd.DataFrame | None:
    """The three splits' meta tables in split order (None when any is missing; said once), with
    ``split`` and ``centre``; refused when a table's rows do not match its split's patches."""
    paths = [pcam_file(folder, split, "meta").with_suffix(".csv") for split in SPLITS]
    if not all(p.is_file() for p in paths):
        log.info(
            f"{folder}: PCam's camelyonpatch_level_2_split_*_meta.csv are not there; with them each patch gets its "
            "slide and hospital (dataset.batch=centre)"
        )
        return None
    tables = []
    for split, path, count in zip(SPLITS, paths, counts, strict=True):
        table = pd.read_csv(path, index_col=0)
        missing = [c for c in META_COLUMNS if c not in table.columns]
        if missing:
            raise DataError(f"{path} lacks the column(s) {', '.join(missing)} of PCam's meta tables")
        if len(table) != count:
            raise DataError(f"{path} has {len(table)} rows but its split has {count} patches: is it the same release?")
        table = table.reset_index(drop=True)[META_COLUMNS]
        table.insert(0, "split", split)
        tables.append(table)
    metadata = pd.concat(tables, ignore_index=True)
    metadata["centre"] = [camelyon16_centre(w) for w in metadata["wsi"]]
    known = metadata["centre"].notna()
    log.info(
        f"PCam meta tables: {int(known.sum())} patches from {metadata.loc[known, 'wsi'].nunique()} slides of "
        f"{metadata.loc[known, 'centre'].nunique()} hospitals; {int((~known).sum())} (test slides) without one"
    )
    return metadata


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
    labels, split, parts, counts = [], [], [], []
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
            counts.append(len(hx["x"]))
    metadata = pcam_metadata(folder, counts)
    store = array_store_dir("pcam", "pcam", cache_dir, files=[str(p.resolve()) for p in xs])
    block_bytes = chunk * parts[0].row_bytes if chunk else None
    with _Blocks(xs) as blocks:
        images, source_rows, generation = store_arrays(store, parts, blocks.read, "PCam", block_bytes)
    if metadata is not None:
        metadata = metadata.iloc[source_rows].reset_index(drop=True)
        metadata.insert(0, "index", np.arange(len(metadata)))
    return ImageArrays(
        images=images,
        labels=np.concatenate(labels)[source_rows],
        class_names=CLASS_NAMES,
        name="pcam",
        split=np.concatenate(split)[source_rows],
        cache_file=store / f"generation-{generation}",
        metadata=metadata,
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
