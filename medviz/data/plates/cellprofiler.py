"""CellProfiler's exports: ExportToSpreadsheet CSVs and ExportToDatabase SQLite, read into a FieldSet.

* ExportToSpreadsheet: ``Image.csv`` (``ImageNumber``, ``Metadata_*``, ``FileName_<ch>``,
  ``PathName_<ch>``) and one CSV per object (``Nuclei.csv``: ``ImageNumber``, ``ObjectNumber``,
  ``Location_Center_X/Y``, ``AreaShape_*`` ...).
* ExportToDatabase (SQLite, as public Cell Painting data ship it): tables ``Per_Image`` and
  ``Per_<Object>``, every column prefixed with its table (``Image_FileName_OrigDNA``,
  ``Nuclei_Location_Center_X``, ``Nuclei_Number_Object_Number``).

Merged tables carry the same prefixes; they are removed, so ``Metadata_Plate``, ``ObjectNumber``
and ``Location_Center_X`` are the names every crop's metadata uses whatever the export. Where
``Location_Center_*`` is absent, ``AreaShape_Center_*`` are the centres.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medviz.data.plates.fields import FIELD, LABEL, Field, FieldSet, X, Y
from medviz.data.plates.paths import PathFinder
from medviz.data.readers.images import IMAGE_SUFFIXES
from medviz.data.readers.tables import read_table
from medviz.errors import DataError
from medviz.text import shown_list

log = logging.getLogger("medviz")

SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
IMAGE_NUMBER, OBJECT_NUMBER = "ImageNumber", "ObjectNumber"
CENTRES = (("Location_Center_X", "Location_Center_Y"), ("AreaShape_Center_X", "AreaShape_Center_Y"))


def _unprefixed(columns: Sequence[str], prefix: str) -> dict[str, str]:
    """Each column's name without ``prefix`` (``Image_Metadata_Plate`` -> ``Metadata_Plate``), unless
    the plain name is a column too."""
    present = set(columns)
    renamed = {}
    for column in columns:
        plain = column[len(prefix) :] if column.startswith(prefix) else column
        renamed[column] = plain if plain == column or plain not in present else column
    return renamed


def _wanted_object_column(column: str, objects: str, requested: Sequence[str]) -> bool:
    plain = column[len(objects) + 1 :] if column.startswith(objects + "_") else column
    return (
        plain in (IMAGE_NUMBER, OBJECT_NUMBER, "Number_Object_Number", "TableNumber")
        or plain in {c for pair in CENTRES for c in pair}
        or plain in requested
        or column in requested
    )


def _sqlite_table(path: Path, names: Sequence[str], wanted=None) -> pd.DataFrame:
    """The first of ``names`` that is a table of the SQLite file ``path`` (only the columns ``wanted`` accepts)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
            table = next((t for t in names if t in tables), None)
            if table is None:
                raise DataError(
                    f"{path}: no table {' or '.join(names)}; its tables are {shown_list(tables, 20)} "
                    "(name the objects with dataset.objects=<name>)"
                )
            columns = [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]  # a name from the file itself
            chosen = [c for c in columns if wanted is None or wanted(c)]
            listed = ", ".join('"' + c.replace('"', '""') + '"' for c in chosen)
            frame = pd.read_sql_query(f'SELECT {listed} FROM "{table}"', db)
    except sqlite3.DatabaseError as err:
        raise DataError(f"{path}: not a readable SQLite file ({err})") from err
    return frame


def read_tables(
    path: Path, objects: str, image_table: str | None, object_table: str | None, requested: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame, str, str]:
    """(image table, object table, where each came from) with the tables' own prefixes removed."""

    def wanted_objects(column: str) -> bool:
        return _wanted_object_column(column, objects, requested)

    if path.is_file() and path.suffix.lower() in SQLITE_SUFFIXES:
        images = _sqlite_table(path, ["Per_Image", "Image"])
        found = _sqlite_table(path, [f"Per_{objects}", objects], wanted_objects)
        image_where, object_where = f"{path} (Per_Image)", f"{path} (Per_{objects})"
    else:
        if not path.is_dir() and image_table is None:
            raise DataError(
                f"dataset.path={path}: not a folder of CellProfiler tables nor a SQLite file "
                f"({', '.join(SQLITE_SUFFIXES)})"
            )
        image_file = _table_file(path, image_table, "Image.csv", "dataset.image_table")
        object_file = _table_file(path, object_table, f"{objects}.csv", "dataset.object_table")
        images = read_table(image_file, "dataset.image_table")
        found = read_table(object_file, "dataset.object_table", columns=wanted_objects)
        image_where, object_where = str(image_file), str(object_file)
    images = images.rename(columns=_unprefixed(list(images.columns), "Image_"))
    found = found.rename(columns=_unprefixed(list(found.columns), f"{objects}_"))
    if OBJECT_NUMBER not in found.columns and "Number_Object_Number" in found.columns:
        found = found.rename(columns={"Number_Object_Number": OBJECT_NUMBER})
    return images, found, image_where, object_where


def _table_file(folder: Path, given: str | None, default: str, key: str) -> Path:
    if given is not None:
        file = Path(given).expanduser()
        return file if file.is_absolute() else folder / file
    file = folder / default
    if not file.is_file():
        present = sorted(p.name for p in folder.glob("*.csv"))
        raise DataError(
            f"{folder}: no {default}; its tables are {shown_list(present, 20)}. Name the table with {key}=<file> "
            "(or the objects with dataset.objects=<name>)"
        )
    return file


def channel_columns(images: pd.DataFrame, channels: Sequence[str] | None, where: str) -> list[str]:
    """The channels to read: ``channels`` as asked, or every ``FileName_<ch>`` whose files are images."""
    available = [c[len("FileName_") :] for c in images.columns if c.startswith("FileName_")]
    if not available:
        raise DataError(
            f"{where}: no FileName_<channel> column: these tables do not name image files (in CellProfiler, "
            "export the image table with its file names: NamesAndTypes' FileName_ and PathName_ measurements)"
        )
    if channels:
        missing = [c for c in channels if c not in available]
        if missing:
            raise DataError(
                f"dataset.channels: {shown_list(missing, 10)} not in {where}; it has {shown_list(available, 20)}"
            )
        return list(channels)
    images_only = [c for c in available if str(images[f"FileName_{c}"].iloc[0]).lower().endswith(IMAGE_SUFFIXES)]
    if len(images_only) < len(available):
        left = [c for c in available if c not in images_only]
        log.info(
            f"{where}: channels {shown_list(left, 10)} are not image files (e.g. illumination functions): left out"
        )
    return images_only


def read_cellprofiler(
    path: str,
    objects: str = "Nuclei",
    channels: Sequence[str] | None = None,
    images_root: str | None = None,
    image_table: str | None = None,
    object_table: str | None = None,
    object_columns: Sequence[str] = (),
) -> FieldSet:
    """CellProfiler's tables at ``path`` (a folder of CSVs, or a SQLite file) as fields and objects."""
    source = Path(path).expanduser().resolve()
    images, found, image_where, object_where = read_tables(source, objects, image_table, object_table, object_columns)
    for table, where in ((images, image_where), (found, object_where)):
        if IMAGE_NUMBER not in table.columns:
            raise DataError(f"{where}: no ImageNumber column; its columns are {shown_list(list(table.columns), 20)}")
    if OBJECT_NUMBER not in found.columns:
        raise DataError(f"{object_where}: no ObjectNumber (or {objects}_Number_Object_Number) column")
    centre = next((pair for pair in CENTRES if set(pair) <= set(found.columns)), None)
    if centre is None:
        raise DataError(
            f"{object_where}: no object centres (Location_Center_X/Y or AreaShape_Center_X/Y, with or without the "
            f"{objects}_ prefix); its columns are {shown_list(list(found.columns), 20)}"
        )
    duplicated = images[IMAGE_NUMBER].duplicated()
    if duplicated.any():
        raise DataError(
            f"{image_where}: ImageNumber {images[IMAGE_NUMBER][duplicated].iloc[0]} appears more than once (row "
            f"{int(np.flatnonzero(duplicated)[0]) + 2}); tables merged from several CellProfiler runs need one "
            "export per run"
        )
    pairs = found[[IMAGE_NUMBER, OBJECT_NUMBER]].duplicated()
    if pairs.any():
        first = int(np.flatnonzero(pairs)[0])
        raise DataError(
            f"{object_where}: (ImageNumber {found[IMAGE_NUMBER].iloc[first]}, ObjectNumber "
            f"{found[OBJECT_NUMBER].iloc[first]}) appears more than once (row {first + 2}); each object needs one row"
        )
    row_of = pd.Series(np.arange(len(images)), index=images[IMAGE_NUMBER].to_numpy())
    field_of = found[IMAGE_NUMBER].map(row_of)
    if field_of.isna().any():
        first = int(np.flatnonzero(field_of.isna().to_numpy())[0])
        raise DataError(
            f"{object_where}: row {first + 2} belongs to ImageNumber {found[IMAGE_NUMBER].iloc[first]}, which "
            f"{image_where} does not have ({int(field_of.isna().sum())} object rows like it); use the image and "
            "object tables of the same export"
        )
    for axis in centre:
        values = pd.to_numeric(found[axis], errors="coerce")
        if values.isna().any():
            first = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(
                f"{object_where}: {int(values.isna().sum())} objects have no {axis} (empty, NaN or not a number), "
                f"e.g. row {first + 2} ({found[axis].iloc[first]!r}); drop those rows or export the centres again"
            )
    missing_columns = [c for c in object_columns if c not in found.columns]
    if missing_columns:
        raise DataError(f"dataset.object_columns: {shown_list(missing_columns, 10)} not in {object_where}")
    names = channel_columns(images, channels, image_where)
    finder = PathFinder(source if source.is_dir() else source.parent, images_root, f"{image_where}")
    fields = []
    for row, record in enumerate(images.itertuples(index=False)):
        values = dict(zip(images.columns, record, strict=True))
        files = tuple(
            str(finder.file(_text(values.get(f"PathName_{c}")), _text(values[f"FileName_{c}"]), f"row {row + 2}, {c}"))
            for c in names
        )
        plate = _text(values.get("Metadata_Plate"))
        fields.append(
            Field(
                f"{plate or '_'}/{values[IMAGE_NUMBER]}", files, plate, where=f"{Path(image_where).name} row {row + 2}"
            )
        )
    metadata_columns = [c for c in images.columns if c.startswith("Metadata_")]
    table = images.iloc[field_of.to_numpy(dtype=np.int64)][metadata_columns].reset_index(drop=True)
    table[IMAGE_NUMBER] = found[IMAGE_NUMBER].to_numpy()
    table[OBJECT_NUMBER] = found[OBJECT_NUMBER].to_numpy()
    table["Location_Center_X"] = pd.to_numeric(found[centre[0]], errors="coerce").to_numpy()
    table["Location_Center_Y"] = pd.to_numeric(found[centre[1]], errors="coerce").to_numpy()
    for column in object_columns:
        table[column] = found[column].to_numpy()
    table[FIELD] = field_of.to_numpy(dtype=np.int64)
    table[X], table[Y], table[LABEL] = table["Location_Center_X"], table["Location_Center_Y"], -1
    order = np.argsort(table[FIELD].to_numpy(), kind="stable")
    table = table.iloc[order].reset_index(drop=True)
    return FieldSet(fields, table, tuple(names), source if source.is_dir() else source.parent, image_where)


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
