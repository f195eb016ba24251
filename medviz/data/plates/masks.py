"""Fields of view with label images (Cellpose, CellProfiler's saved objects) read into a FieldSet.

A label image has 0 for background and 1..n for the objects, the field's own size. Cellpose writes
``<field>_cp_masks.png`` (or ``.tif``) beside each field, and ``<field>_seg.npy`` (a pickled dict
whose ``masks`` is the label image; read only with an unpickler that admits arrays, dicts, lists,
text and numbers); CellProfiler's SaveImages writes objects as 16-bit label images under a name of
the pipeline's choosing. ``dataset.mask_suffix`` is that name's ending (default ``_cp_masks``,
tried as .png, .tif and .tiff, then ``_seg.npy``). Each object's centre is its centroid and its
area (pixels) comes along as ``AreaShape_Area``. Objects are found once per mask file version and
kept in the cache, so a later run does not read every mask again.
Fields in sub-folders (``<Plate>/<field>.tif``) take the top folder as their plate
(``Metadata_Plate``; illumination functions are per plate).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medviz.data.plates.fields import FIELD, LABEL, Field, FieldSet, X, Y
from medviz.data.readers.channel_files import group_channel_files
from medviz.data.readers.file_walk import files_below
from medviz.data.readers.images import read_image
from medviz.data.readers.safe_pickle import load_pickled_npy
from medviz.errors import DataError
from medviz.store.location import default_cache_dir

log = logging.getLogger("medviz")

MASK_SUFFIXES = (".png", ".tif", ".tiff")
SEG_SUFFIX = "_seg.npy"


def label_image(path: Path) -> np.ndarray:
    """A label image (H, W) int64 from an image file or a Cellpose ``_seg.npy``."""
    if path.name.endswith(SEG_SUFFIX):
        saved = load_pickled_npy(path)
        masks = saved.get("masks") if isinstance(saved, dict) else None
        if not isinstance(masks, np.ndarray) or masks.ndim != 2:
            raise DataError(f"{path}: no 2-D 'masks' array in it; point dataset.mask_suffix at the _cp_masks files")
        return masks.astype(np.int64)
    image = read_image(path, as_photo=False)
    if image.shape[-1] != 1:
        raise DataError(f"{path}: a label image must have one channel, it has {image.shape[-1]}")
    return image[..., 0].astype(np.int64)


def objects_of(labels: np.ndarray) -> pd.DataFrame:
    """One row per label 1..n present in ``labels`` (H, W): label, centroid x/y (pixels), area."""
    flat = labels.ravel()
    count = int(flat.max(initial=0)) + 1
    area = np.bincount(flat, minlength=count)
    rows, cols = np.divmod(np.arange(flat.size), labels.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.bincount(flat, weights=rows, minlength=count) / area
        x = np.bincount(flat, weights=cols, minlength=count) / area
    present = np.flatnonzero(area)
    present = present[present > 0]  # label 0 is the background
    return pd.DataFrame({"label": present, "x": x[present], "y": y[present], "area": area[present]})


def _cached_objects(mask: Path, cache: Path) -> pd.DataFrame:
    info = os.stat(mask)
    name = hashlib.sha256(f"{mask}|{info.st_size}|{info.st_mtime_ns}".encode()).hexdigest()[:24]
    file = cache / f"{name}.npz"
    try:
        with np.load(file, allow_pickle=False) as kept:
            return pd.DataFrame({k: kept[k] for k in ("label", "x", "y", "area")})
    except (OSError, ValueError, KeyError):
        pass
    found = objects_of(label_image(mask))
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{name}.{os.getpid()}.npz"
    np.savez(tmp, **{k: found[k].to_numpy() for k in found.columns})
    tmp.replace(file)
    return found


def find_mask(first: Path, stem: str, masks_dir: Path | None, suffix: str) -> Path | None:
    """The label image of the field whose name part is ``stem``: ``<stem><suffix>.png|.tif|.tiff`` or
    ``<stem>_seg.npy``, beside the field or in ``masks_dir``."""
    folder = masks_dir or first.parent
    for ending in MASK_SUFFIXES:
        candidate = folder / f"{stem}{suffix}{ending}"
        if candidate.is_file():
            return candidate
    seg = folder / f"{stem}{SEG_SUFFIX}"
    return seg if seg.is_file() else None


def read_masks(
    path: str,
    mask_suffix: str = "_cp_masks",
    masks_path: str | None = None,
    channel_files: Sequence[str] | None = None,
    channel_names: Sequence[str] | None = None,
    cache_dir: str | None = None,
) -> FieldSet:
    """A folder of fields (one file each, or one per channel with ``channel_files``) and their label images."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"dataset.path={path} is not a folder of fields of view")
    masks_dir = Path(masks_path).expanduser().resolve() if masks_path else None
    endings = (SEG_SUFFIX, ".npy", *(mask_suffix + e for e in MASK_SUFFIXES))
    files = [Path(item.payload) for item in files_below(root, stat=False)]
    files = [f for f in files if not f.name.endswith(endings)]  # the masks themselves are not fields
    if channel_files:
        groups = group_channel_files(files, channel_files, root)
        prefix, suffix = channel_files[0].split("*")
        stems = [g[0].name[len(prefix) : len(g[0].name) - len(suffix)] for g in groups]
    else:
        groups = [(f,) for f in sorted(files)]
        stems = [f.name.rsplit(".", 1)[0] for f in sorted(files)]
    if not groups:
        raise DataError(f"{root}: no fields of view (image files other than masks)")
    cache = Path(cache_dir or default_cache_dir()) / "mask-objects"
    fields, parts, unpaired = [], [], []
    for group, stem in zip(groups, stems, strict=True):
        key = group[0].relative_to(root).as_posix()
        mask = find_mask(group[0], stem, masks_dir, mask_suffix)
        if mask is None:
            unpaired.append(key)
            continue
        try:
            found = _cached_objects(mask, cache)
        except (OSError, DataError, ValueError) as err:
            log.warning(f"{mask}: {err}; its field {key} is skipped")
            continue
        position = len(fields)
        plate = key.split("/")[0] if "/" in key else ""  # fields in sub-folders: the top folder is the plate
        fields.append(Field(key, tuple(str(f) for f in group), plate, str(mask), where=f"mask {mask.name}"))
        parts.append(
            pd.DataFrame(
                {
                    "field_path": key,
                    **({"Metadata_Plate": plate} if plate else {}),
                    "ObjectNumber": found["label"].to_numpy(np.int64),
                    "Location_Center_X": found["x"].to_numpy(),
                    "Location_Center_Y": found["y"].to_numpy(),
                    "AreaShape_Area": found["area"].to_numpy(np.int64),
                    FIELD: position,
                    X: found["x"].to_numpy(),
                    Y: found["y"].to_numpy(),
                    LABEL: found["label"].to_numpy(np.int64),
                }
            )
        )
    if unpaired:
        where = masks_dir or "beside its field"
        message = (
            f"{root}: {len(unpaired)} of {len(groups)} fields have no label image <name>{mask_suffix}.png|.tif "
            f"or <name>{SEG_SUFFIX} ({where}), e.g. {unpaired[0]}"
        )
        if len(unpaired) == len(groups):
            raise DataError(message + "; set dataset.mask_suffix to the ending of your mask files' names")
        log.warning(message + "; those fields are skipped")
    if not fields:
        raise DataError(f"{root}: no field could be paired with a readable label image (see the warnings above)")
    names = tuple(channel_names) if channel_names else ()  # () : named from the crops' channel count
    return FieldSet(fields, pd.concat(parts, ignore_index=True), names, root, str(root))
