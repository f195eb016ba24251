"""Planning a plate ingest: which objects each field gives, and the store item that cuts them.

A field's version is its files' sizes and times, its objects' centres and labels and the
illumination it is divided by; which objects it keeps (``edge=drop``) follows from the field's
size, read from its first file's header and kept beside the store, so nothing is decoded here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviz.data.plates.crops import CropSettings, inside
from medviz.data.plates.field_reader import FieldPayload, FieldUnreadable, field_shape
from medviz.data.plates.fields import LABEL, Field, FieldSet, X, Y
from medviz.data.plates.illumination import plate_functions, saved_functions
from medviz.data.prepare.memory import physical_memory
from medviz.errors import DataError
from medviz.store.source_item import SourceItem

log = logging.getLogger("medviz")

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
