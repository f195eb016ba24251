"""A plate format's fields and objects -> one crop per object in the store -> the dataset.

Each field is one item of the store (:mod:`medviz.store`): its key is ``<plate>/<image>``, its
version the sizes and times of its files with its objects' centres and the illumination it is
divided by, and it decodes to the block of its crops (one read of its files, in the store's worker
processes). A plate added to the tables is the only thing cut next time; a field whose objects
changed is cut again. The plan (:mod:`medviz.data.plates.plan`) knows every stored row's object
without decoding anything.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medviz.bulk import paused_gc
from medviz.data.image_arrays import ImageArrays
from medviz.data.plates.blocks import read_block
from medviz.data.plates.crops import CropSettings
from medviz.data.plates.fields import FieldSet
from medviz.data.plates.plan import CropPlan, plan_crops
from medviz.data.plates.shards import from_shards, plates_of, shard_dir
from medviz.data.prepare.metadata import PATH_KEY
from medviz.errors import DataError
from medviz.store.ingest import IngestReport, default_workers, ingest
from medviz.store.location import cache_key, default_cache_dir
from medviz.store.read import open_store

log = logging.getLogger("medviz")

#: Bumped when the way crops are cut changes, so stores of the old way are not reused.
CROPPER_VERSION = 1


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
