"""A plate format's fields and objects -> one crop per object in the store -> the dataset.

Each field is one item of the store (:mod:`medviz.store`): its key is ``<plate>/<image>``, its
version the sizes and times of its files with its objects' centres and the illumination it is
divided by, and it decodes to the block of its crops (one read of its files, in the store's worker
processes). A plate added to the tables is the only thing cut next time; a field whose objects
changed is cut again. Which objects a field keeps (``edge=drop``) follows from the field's size,
read from its first file's header and kept beside the store, so the dataset knows every stored
row's object without decoding anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medviz.bulk import paused_gc
from medviz.data.image_arrays import ImageArrays
from medviz.data.plates.blocks import read_block
from medviz.data.plates.crops import CropSettings, inside
from medviz.data.plates.field_reader import FieldPayload, FieldUnreadable, field_shape
from medviz.data.plates.fields import LABEL, Field, FieldSet, X, Y
from medviz.data.plates.illumination import plate_functions, saved_functions
from medviz.data.plates.shards import from_shards, plates_of, shard_dir
from medviz.data.prepare.memory import physical_memory
from medviz.data.prepare.metadata import PATH_KEY
from medviz.errors import DataError
from medviz.store.ingest import IngestReport, default_workers, ingest
from medviz.store.location import cache_key, default_cache_dir
from medviz.store.read import open_store
from medviz.store.source_item import SourceItem

log = logging.getLogger("medviz")

#: Bumped when the way crops are cut changes, so stores of the old way are not reused.
CROPPER_VERSION = 1
#: A field is read whole, as 4-byte floats per pixel and channel at worst (illumination correction),
#: in each of the workers with two fields in flight: fields above this share of the machine's memory
#: per field in flight are refused, not left to exhaust memory halfway through a plate.
FIELD_MEMORY_SHARE = 0.5


def field_bytes_limit(workers: int) -> int:
    """The largest field (bytes as float32) read whole with ``workers`` decoding processes."""
    return int(FIELD_MEMORY_SHARE * physical_memory() / (2 * max(workers, 1) + 1))


@dataclass(frozen=True)
class CropPlan:
    """Which objects each field gives, and the store items that cut them.

    Attributes:
        items: one store item per field with at least one crop, in field order.
        rows: field key -> the positions (into the FieldSet's objects) of its crops, in store row order.
        dropped_edge, outside, unreadable: objects left out (box across the edge; centre outside the
            field) and fields that could not be listed (a missing file), with an example each.
    """

    items: list[SourceItem]
    rows: dict[str, np.ndarray]
    dropped_edge: int
    outside: int
    unreadable: list[str]


def plates_store(fields: FieldSet, settings: CropSettings, illumination: str | None, cache_dir: str | None) -> Path:
    """One store per source, crop settings, channels and illumination (not per plate list: adding
    plates updates the same store)."""
    key = cache_key(
        what=fields.what,
        channels=list(fields.channel_names),
        box=settings.box,
        size=settings.size,
        edge=settings.edge,
        mask_objects=settings.mask_objects,
        illumination=illumination,
        version=CROPPER_VERSION,
    )
    return Path(cache_dir or default_cache_dir()) / "stores" / f"crops-{fields.root.name}-{settings.size}px-{key}"


class _Shapes:
    """Field sizes by (file, size, mtime), read from headers once and kept beside the store."""

    def __init__(self, store_dir: Path) -> None:
        self.path = store_dir / "field_shapes.json"
        try:
            self.known: dict[str, list[int]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.known = {}
        self.changed = False

    def of(self, file: str, version: tuple[int, int]) -> tuple[int, int]:
        key = f"{file}|{version[0]}|{version[1]}"
        if key not in self.known:
            self.known[key] = list(field_shape(file))
            self.changed = True
        height, width = self.known[key]
        return int(height), int(width)

    def keep(self) -> None:
        if self.changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.known))
            tmp.replace(self.path)


def _versions(field: Field) -> list[tuple[int, int]] | None:
    try:
        return [(s.st_size, s.st_mtime_ns) for s in (os.stat(f) for f in (*field.files, *filter(None, [field.mask])))]
    except OSError as err:
        log.warning(f"{field.key} ({field.where}): {err.filename or err}: {err.strerror}; its objects are skipped")
        return None


def _illumination(
    fields: FieldSet, versions: dict[str, list[tuple[int, int]]], setting: str | None, store_dir: Path
) -> dict[str, tuple[str, ...]]:
    """Plate -> one flat-field file per channel (``dataset.illumination``); empty when off."""
    if setting in (None, "", "none"):
        return {}
    by_plate: dict[str, list[Field]] = defaultdict(list)
    for field in fields.fields:
        if field.key in versions:
            by_plate[field.plate].append(field)
    if setting == "plate":
        functions = {}
        for plate, members in by_plate.items():
            version = json.dumps([(f.key, f.files, versions[f.key]) for f in members])
            functions[plate] = plate_functions(
                members, fields.channel_names, store_dir / "illumination", version, plate
            )
        return functions
    folder = Path(setting).expanduser()
    if not folder.is_dir():
        raise DataError(
            f"dataset.illumination={setting}: choose plate, none, or a folder of <Plate>_Illum<Channel>.npy"
        )
    return {plate: saved_functions(folder, plate, fields.channel_names) for plate in by_plate}


def plan_crops(
    fields: FieldSet,
    settings: CropSettings,
    store_dir: Path,
    illumination: str | None,
    workers: int = 1,
    functions_dir: Path | None = None,
) -> CropPlan:
    """The store items of ``fields``: each field's version, the objects it keeps, and its payload.

    ``functions_dir``: where per-plate illumination functions are kept (default: beside ``store_dir``;
    plate shards keep them beside the dataset's store, so the assembled store uses the same ones).
    """
    limit = field_bytes_limit(workers)
    objects = fields.objects
    centres_all = objects[[X, Y]].to_numpy(np.float64)
    labels_all = objects[LABEL].to_numpy(np.int64)
    shapes = _Shapes(store_dir)
    versions: dict[str, list[tuple[int, int]]] = {}
    unreadable: list[str] = []
    for field in fields.fields:
        found = _versions(field)
        if found is None:
            unreadable.append(field.key)
        else:
            versions[field.key] = found
    functions = _illumination(fields, versions, illumination, functions_dir or store_dir)
    items, rows = [], {}
    dropped_edge = outside = 0
    for field, positions in zip(fields.fields, fields.objects_of(), strict=True):
        if field.key not in versions or len(positions) == 0:
            continue
        try:
            height, width = shapes.of(field.files[0], versions[field.key][0])
        except (OSError, FieldUnreadable) as err:
            log.warning(f"{field.key} ({field.where}): {err}; its objects are skipped")
            unreadable.append(field.key)
            continue
        needed = height * width * len(field.files) * 4
        if needed > limit:
            log.warning(
                f"{field.key} ({field.where}): a {width}x{height} px field of {len(field.files)} file(s) needs "
                f"{needed / 2**30:.1f} GiB to read whole, more than {limit / 2**30:.1f} GiB per field on this machine "
                "with dataset.ingest_workers processes; its objects are skipped. Lower dataset.ingest_workers, "
                "or split the field into tiles (each with its own rows) before cropping"
            )
            unreadable.append(field.key)
            continue
        centres = centres_all[positions]
        within = (centres[:, 0] >= 0) & (centres[:, 0] < width) & (centres[:, 1] >= 0) & (centres[:, 1] < height)
        if not within.all():
            first = int(positions[np.flatnonzero(~within)[0]])
            log.warning(
                f"{field.key} ({field.where}): {int((~within).sum())} object centres lie outside its "
                f"{width}x{height} px field (e.g. x={centres_all[first, 0]:g}, y={centres_all[first, 1]:g}); skipped"
            )
            outside += int((~within).sum())
        keep = within
        if settings.edge == "drop":
            crossing = within & ~inside(centres, (height, width), settings.box)
            dropped_edge += int(crossing.sum())
            keep = within & ~crossing
        kept = positions[keep]
        if len(kept) == 0:
            continue
        illum = functions.get(field.plate)
        digest = hashlib.sha256()
        digest.update(json.dumps([versions[field.key], illum, settings.box]).encode())
        digest.update(centres_all[kept].tobytes())
        digest.update(labels_all[kept].tobytes())
        payload = FieldPayload(
            where=f"{field.key} ({field.where})",
            files=field.files,
            centres=centres_all[kept],
            settings=settings,
            mask=field.mask if settings.mask_objects else None,
            labels=labels_all[kept] if settings.mask_objects else None,
            illumination=illum,
        )
        size = sum(v[0] for v in versions[field.key])
        items.append(SourceItem(field.key, size, int.from_bytes(digest.digest()[:7], "big"), payload, len(kept)))
        rows[field.key] = kept
    shapes.keep()
    return CropPlan(items, rows, dropped_edge, outside, unreadable)


def crops_dataset(
    fields: FieldSet,
    settings: CropSettings,
    name: str,
    illumination: str | None = None,
    cache_dir: str | None = None,
    workers: int | None = None,
    plate: str | Sequence[str] | None = None,
) -> ImageArrays:
    """Every object's crop of ``fields`` through the store, with each crop's metadata (one row per crop).

    ``plate``: only these plates' crops, each cut into its own shard (:mod:`medviz.data.plates.shards`).
    """
    if plate is not None and not (isinstance(plate, Sequence) and not isinstance(plate, str) and not plate):
        return _plates_dataset(fields, settings, name, illumination, cache_dir, workers, plate)
    store_dir, plan, _ = ingest_crops(fields, settings, illumination, cache_dir, workers)
    return _stored_crops(fields, store_dir, plan, name)


def _plates_dataset(
    fields: FieldSet,
    settings: CropSettings,
    name: str,
    illumination: str | None,
    cache_dir: str | None,
    workers: int | None,
    plate: str | Sequence[str],
) -> ImageArrays:
    """The crops of some plates, each plate ingested into its own shard, as one dataset."""
    wanted = [plate] if isinstance(plate, str) else [str(p) for p in plate]
    parts = []
    for one in wanted:
        subset = plates_of(fields, one)
        shard, plan, _ = ingest_crops(subset, settings, illumination, cache_dir, workers, shard_of=one)
        parts.append(_stored_crops(subset, shard, plan, name))
    if len(parts) == 1:
        return parts[0]
    # A group of plates is read into memory as one array (its shards stay as they are); training over
    # every plate assembles the dataset's own store from the shards instead (no dataset.plate).
    first = parts[0]
    return ImageArrays(
        images=np.concatenate([np.asarray(p.images) for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        class_names=(),
        name=name,
        files=[f for p in parts for f in (p.files or [])],
        channel_names=first.channel_names,
        metadata=pd.concat([p.metadata for p in parts], ignore_index=True),
    )


def _stored_crops(fields: FieldSet, store_dir: Path, plan: CropPlan, name: str) -> ImageArrays:
    """The crops the store at ``store_dir`` holds for ``plan``, with their metadata rows."""
    stored = open_store(store_dir)
    positions = []
    for entry in stored.items:
        kept = plan.rows.get(entry.key)
        if kept is None:  # a field the tables no longer have: the next ingest removes it
            raise DataError(
                f"the store {store_dir} holds field {entry.key}, which the tables no longer name; run again"
            )
        if len(kept) != entry.count:
            raise DataError(
                f"the store {store_dir} holds {entry.count} crops of field {entry.key} but the tables give "
                f"{len(kept)}: delete the folder and the next run builds it again"
            )
        positions.append(kept)
    if not positions:
        raise DataError(f"{fields.what}: no crop could be cut (see the warnings above)")
    order = np.concatenate(positions)
    metadata = fields.metadata.iloc[order].reset_index(drop=True)
    numbers = metadata["ObjectNumber"].to_numpy() if "ObjectNumber" in metadata.columns else order
    keys = [entry.key for entry in stored.items for _ in range(entry.count)]
    names = [f"{key}/{number}" for key, number in zip(keys, numbers, strict=True)]
    files = [fields.root / name for name in names]
    # Each crop's identity, the key run folders and exports match points by: <field key>/<object number>.
    metadata.insert(0, PATH_KEY, names)
    return ImageArrays(
        images=stored.images,
        labels=np.full(len(order), -1, dtype=np.int64),
        class_names=(),
        name=name,
        files=files,
        cache_file=store_dir / f"generation-{stored.generation}",
        channel_names=fields.channel_names if len(fields.channel_names) == stored.images.shape[-1] else None,
        metadata=metadata,
    )


def ingest_crops(
    fields: FieldSet,
    settings: CropSettings,
    illumination: str | None = None,
    cache_dir: str | None = None,
    workers: int | None = None,
    shard_of: str | None = None,
) -> tuple[Path, CropPlan, IngestReport]:
    """Bring the crops' store of ``fields`` up to date; says what was left out and why.

    ``shard_of``: ``fields`` are one plate's, cut into that plate's shard. Otherwise fields that
    plate shards hold at the same version are copied from them, not cut again.
    """
    illumination = None if illumination in (None, "", "none") else illumination  # one store for "off"
    main_dir = plates_store(fields, settings, illumination, cache_dir)
    store_dir = main_dir if shard_of is None else shard_dir(main_dir, shard_of)
    with paused_gc():
        plan = plan_crops(fields, settings, store_dir, illumination, workers or default_workers(), main_dir)
    if not plan.items:
        raise DataError(
            f"{fields.what}: none of its {len(fields.objects)} objects gives a crop (see the warnings above)"
        )
    items, copied = plan.items, 0
    if shard_of is None:
        items, copied = from_shards(store_dir, plan.items, [f.plate for f in fields.fields])
    report = ingest(store_dir, items, read_block, fields.what, workers, parallel_blocks=True)
    crops = sum(item.count for item in plan.items)
    where = f" of plate {shard_of}" if shard_of is not None else ""
    said = [f"{crops} crops of {settings.box} px from {len(plan.items)} fields{where}"]
    if copied and report.added:
        said.append(f"up to {copied} of them copied from plate shards, not cut again")
    if plan.dropped_edge:
        said.append(
            f"{plan.dropped_edge} objects whose box crosses the field's edge dropped (dataset.edge=pad keeps them)"
        )
    if plan.outside:
        said.append(f"{plan.outside} with a centre outside their field skipped")
    if plan.unreadable:
        said.append(f"{len(plan.unreadable)} fields unreadable (e.g. {plan.unreadable[0]})")
    log.info(f"{fields.what}: {'; '.join(said)}; store {store_dir}: {report}")
    return store_dir, plan, report
