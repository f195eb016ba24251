"""Read what an offline W&B run wrote (``run-<id>.wandb``), to check it in tests without a server.

The file is a LevelDB-style log: a 7-byte header, then 32 KiB blocks of records, each with a
7-byte header (crc32, little-endian length, type), long records split over blocks as
FIRST/MIDDLE/LAST pieces. Each record is a ``wandb_internal_pb2.Record`` protobuf.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from wandb.proto import wandb_internal_pb2

_BLOCK = 32768
_HEADER = 7
_FULL, _LAST = 1, 4


def offline_run_dirs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def read_records(offline_run: Path, wait_s: float = 60.0) -> list[wandb_internal_pb2.Record]:
    """All records of one finished offline run folder.

    W&B's service process writes the file asynchronously: ``finish()`` can return before the exit
    record is on disk (seen on a loaded 2-core machine), so this re-reads until it is there.
    """
    (path,) = offline_run.glob("run-*.wandb")
    deadline = time.monotonic() + wait_s
    while True:
        records = _parse(path.read_bytes())
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.25)


def _parse(raw: bytes) -> list[wandb_internal_pb2.Record]:
    """Records of a LevelDB-log-framed file: 32 KiB blocks of (crc, length, kind) chunks."""
    records, piece, pos = [], b"", _HEADER
    while pos + _HEADER <= len(raw):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos : pos + _HEADER])
        if pos + _HEADER + length > len(raw):  # a record still being written
            break
        pos += _HEADER
        piece += raw[pos : pos + length]
        pos += length
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(piece)
            records.append(record)
            piece = b""
    return records


def history_keys(records) -> set[str]:
    """Every key logged with ``run.log`` (nested keys joined with '/')."""
    keys = set()
    for record in records:
        if record.WhichOneof("record_type") == "history":
            keys |= {item.key or "/".join(item.nested_key) for item in record.history.item}
    return keys


def media_types(records) -> dict[str, str]:
    """Logged media (images, tables) by key, with their W&B type, e.g. ``{"map/final": "images/separated"}``."""
    found = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                if key.endswith("/_type"):
                    found[key.removesuffix("/_type")] = json.loads(item.value_json)
    return found


def config_keys(records) -> set[str]:
    keys = set()
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "config":
            keys |= {item.key for item in record.config.update}
        elif kind == "run":
            keys |= {item.key for item in record.run.config.update}
    return keys


def run_record(records):
    return next(r.run for r in records if r.WhichOneof("record_type") == "run")


def exit_code(records) -> int | None:
    codes = [r.exit.exit_code for r in records if r.WhichOneof("record_type") == "exit"]
    return codes[-1] if codes else None


def config_value(records, key: str):
    for record in records:
        kind = record.WhichOneof("record_type")
        items = record.config.update if kind == "config" else record.run.config.update if kind == "run" else []
        for item in items:
            if item.key == key:
                return json.loads(item.value_json)
    return None
