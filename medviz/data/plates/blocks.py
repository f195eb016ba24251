"""What the store's worker processes run for plates: a field's crops, cut from its files or copied
from a plate shard. Kept apart from the tables' code so the workers import numpy and the image
readers only (pandas alone would add about half a second to each worker's start)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from medviz.data.plates.field_reader import FieldPayload, read_field_crops


class ShardBlock(NamedTuple):
    """One field's crops as a shard holds them: rows ``row`` .. ``row + count - 1`` of its row file."""

    file: str
    shape: tuple[int, ...]
    dtype: str
    row: int
    count: int


def read_block(payload: FieldPayload | ShardBlock) -> np.ndarray:
    """A field's crops (K, size, size, C): copied from a shard, or cut from the field (the store's reader)."""
    if isinstance(payload, ShardBlock):
        dtype = np.dtype(payload.dtype)
        row_bytes = int(np.prod(payload.shape)) * dtype.itemsize
        block = np.fromfile(
            payload.file, dtype=dtype, count=payload.count * int(np.prod(payload.shape)), offset=payload.row * row_bytes
        )
        if block.size != payload.count * int(np.prod(payload.shape)):
            raise ValueError(f"{payload.file}: the shard ended before row {payload.row + payload.count}")
        return block.reshape(payload.count, *payload.shape)
    return read_field_crops(payload)


def write_block(payload: FieldPayload | ShardBlock, slot: np.ndarray) -> int | np.ndarray:
    """A field's crops written straight into ``slot`` (n, size, size, C), a worker's shared slot:
    their count; or the crops themselves (K, size, size, C) when they are not of the slot's kind or
    size (they then come back through the pipe)."""
    count = payload.count if isinstance(payload, ShardBlock) else len(payload.centres)
    if count > len(slot):
        return read_block(payload)
    target = slot[:count]
    if isinstance(payload, ShardBlock):
        if tuple(payload.shape) != target.shape[1:] or np.dtype(payload.dtype) != target.dtype:
            return read_block(payload)
        with open(payload.file, "rb") as handle:
            handle.seek(payload.row * target[0].nbytes)
            if handle.readinto(memoryview(target).cast("B")) != target.nbytes:
                raise ValueError(f"{payload.file}: the shard ended before row {payload.row + payload.count}")
        return count
    crops = read_field_crops(payload, out=target)
    return count if np.shares_memory(crops, target) else crops


# The store's workers write blocks of this reader straight into their shared slots (no copy).
read_block.writes_into = write_block  # type: ignore[attr-defined]
