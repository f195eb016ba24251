"""Plate shards: one store per plate, cut by independent jobs, read by training as one dataset.

A screen of hundreds of plates is cut plate by plate: ``dataset.plate=<name>`` (or a list) makes
an ingest cut only that plate's fields, into a store of its own beside the dataset's
(``<dataset store>-plate-<name>``), with a lock of its own, so jobs of different plates run at
once -- on one machine or as a SLURM array (``python ingest.py -m dataset.plate=P1,P2,...``,
docs/plates.md). The dataset's own store is then assembled from the shards: a field a shard holds
at the same version (files, centres, illumination) is copied from it, bytes only, nothing decoded;
only what no shard holds is cut again.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medviz.data.plates.blocks import ShardBlock
from medviz.data.plates.fields import FIELD, FieldSet
from medviz.errors import DataError
from medviz.store.index import Entry, StoreIndex
from medviz.store.source_item import SourceItem
from medviz.text import shown_list

log = logging.getLogger("medviz")

SHARD_MARK = "-plate-"


def shard_dir(store_dir: Path, plate: str) -> Path:
    """The store of one plate's crops, beside the dataset's store."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", plate)[:60] or "_"
    return store_dir.with_name(f"{store_dir.name}{SHARD_MARK}{safe}")


def plates_of(fields: FieldSet, plates: str | Sequence[str]) -> FieldSet:
    """``fields`` with only the fields (and objects) of ``plates``; an unknown plate is refused, listing them."""
    wanted = [str(plates)] if isinstance(plates, str | int) else [str(p) for p in plates]
    present = sorted({f.plate for f in fields.fields})
    missing = [p for p in wanted if p not in present]
    if missing:
        raise DataError(
            f"dataset.plate: {shown_list(missing, 10)} not in {fields.what}; its plates are {shown_list(present, 30)}"
        )
    keep = [i for i, f in enumerate(fields.fields) if f.plate in wanted]
    renumber = np.full(len(fields.fields), -1, np.int64)
    renumber[keep] = np.arange(len(keep))
    objects = fields.objects[np.isin(fields.objects[FIELD].to_numpy(), keep)].copy()
    objects[FIELD] = renumber[objects[FIELD].to_numpy()]
    return FieldSet(
        [fields.fields[i] for i in keep], objects.reset_index(drop=True), fields.channel_names, fields.root, fields.what
    )


def from_shards(store_dir: Path, items: list[SourceItem], plates: Sequence[str]) -> tuple[list[SourceItem], int]:
    """``items`` with those a plate shard holds at the same version read from it; and how many crops that is."""
    held: dict[str, tuple[Entry, ShardBlock]] = {}
    for plate in sorted(set(plates)):
        shard = shard_dir(store_dir, plate)
        if not (shard / "index.sqlite").is_file():
            continue
        try:
            with StoreIndex(shard / "index.sqlite", read_only=True) as index:
                file, shape, dtype = index.meta("file"), index.meta("shape"), index.meta("dtype")
                entries = index.readable_in_row_order()
                rows = index.rows
        except (OSError, sqlite3.Error) as err:  # a damaged shard: its fields are cut from the images instead
            log.warning(f"plate shard {shard}: not read ({err}); its fields are cut from the images")
            continue
        if file is None or rows == 0:
            continue
        for entry in entries:
            if entry.row + entry.count <= rows:
                block = ShardBlock(str(shard / file), tuple(shape), str(dtype), entry.row, entry.count)
                held[entry.key] = (entry, block)
    copied, out = 0, []
    for item in items:
        entry, block = held.get(item.key, (None, None))
        same = entry is not None and (entry.size, entry.mtime_ns, entry.count) == (item.size, item.mtime_ns, item.count)
        if same and block is not None:
            out.append(item._replace(payload=block))
            copied += item.count
        else:
            out.append(item)
    return out, copied
