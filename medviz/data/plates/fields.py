"""What every plate format is read into: fields of view and one row per object, with its metadata."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medviz.errors import DataError

#: Columns of :attr:`FieldSet.objects` that are medviz's own (not metadata): the object's field
#: (an index into ``fields``), its centre in the field's pixels (x = column, y = row) and its
#: label in the field's mask (-1: no mask).
FIELD, X, Y, LABEL = "_field", "_x", "_y", "_label"
OWN_COLUMNS = (FIELD, X, Y, LABEL)


@dataclass(frozen=True)
class Field:
    """One field of view (one site of one well).

    Attributes:
        key: unique name, ``<plate>/<image>`` (the store's key; messages name it).
        files: one file per channel, in the dataset's channel order (a single file may hold all channels).
        plate: its plate (illumination functions are per plate), '' when the tables name none.
        mask: its label image (0 background, 1..n objects), for ``dataset.mask_objects``; None: none.
        where: where the tables describe it (e.g. ``Image.csv row 12``), for messages.
    """

    key: str
    files: tuple[str, ...]
    plate: str = ""
    mask: str | None = None
    where: str = ""


@dataclass
class FieldSet:
    """A plate format's content.

    Attributes:
        fields: every field of view, in table order.
        objects: one row per object in field order: ``_field``, ``_x``, ``_y``, ``_label`` and
            every metadata column (image metadata, ``ImageNumber``, ``ObjectNumber``, the centre's
            own columns, object columns asked for); the metadata travels with each crop.
        channel_names: one name per channel; () where the tables name none.
        root: the folder the dataset is named after (its crops' paths are relative to it).
        what: the source, as messages name it.
    """

    fields: list[Field]
    objects: pd.DataFrame
    channel_names: tuple[str, ...]
    root: Path
    what: str

    def __post_init__(self) -> None:
        if not self.fields:
            raise DataError(f"{self.what}: no fields of view in the tables")

    def objects_of(self) -> list[np.ndarray]:
        """For each field, the positions (into ``objects``) of its objects, in table order."""
        field_of = self.objects[FIELD].to_numpy()
        order = np.argsort(field_of, kind="stable")
        bounds = np.searchsorted(field_of[order], np.arange(len(self.fields) + 1))
        return [order[bounds[i] : bounds[i + 1]] for i in range(len(self.fields))]

    @property
    def metadata(self) -> pd.DataFrame:
        """The objects' metadata columns, one row per object."""
        return self.objects.drop(columns=list(OWN_COLUMNS)).reset_index(drop=True)
