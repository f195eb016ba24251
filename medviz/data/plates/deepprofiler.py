"""DeepProfiler's project layout, read into a FieldSet.

A DeepProfiler project keeps its inputs as ``inputs/metadata/index.csv`` (``Metadata_Plate``,
``Metadata_Well``, ``Metadata_Site``, one column per channel holding the image's path relative
to ``inputs/images/``, and any other metadata) and one locations file per image,
``inputs/locations/<Plate>/<Well>-<Site>-<Object>.csv``, with ``<Object>_Location_Center_X/Y``
(DeepProfiler's own ``dataset/image_dataset.py`` and ``imaging/boxes.py``: the image key is
``<Plate>/<Well>-<Site>``). An image without a locations file has no objects (DeepProfiler reads
it as empty); it is counted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medviz.data.plates.fields import FIELD, LABEL, Field, FieldSet, X, Y
from medviz.data.readers.images import IMAGE_SUFFIXES
from medviz.data.readers.tables import read_table
from medviz.errors import DataError
from medviz.text import shown_list

log = logging.getLogger("medviz")

KEY_COLUMNS = ("Metadata_Plate", "Metadata_Well", "Metadata_Site")


def _inputs(path: Path) -> Path:
    """The project's ``inputs`` folder, given the project or ``inputs`` itself."""
    for candidate in (path / "inputs", path):
        if (candidate / "metadata" / "index.csv").is_file():
            return candidate
    raise DataError(
        f"dataset.path={path}: not a DeepProfiler project (no inputs/metadata/index.csv); point it at the "
        "project folder that holds inputs/"
    )


def _channels(index: pd.DataFrame, channels: Sequence[str] | None, where: str) -> list[str]:
    if channels:
        missing = [c for c in channels if c not in index.columns]
        if missing:
            raise DataError(f"dataset.channels: {shown_list(missing, 10)} are not columns of {where}")
        return list(channels)
    found = [
        c
        for c in index.columns
        if not c.startswith("Metadata_") and index[c].astype(str).str.lower().str.endswith(IMAGE_SUFFIXES).all()
    ]
    if not found:
        raise DataError(
            f"{where}: no column holds image paths; name the channel columns with dataset.channels=[DNA, RNA, ...]"
        )
    return found


def read_deepprofiler(path: str, objects: str = "Nuclei", channels: Sequence[str] | None = None) -> FieldSet:
    """A DeepProfiler project (the folder holding ``inputs/``) as fields and objects."""
    inputs = _inputs(Path(path).expanduser().resolve())
    index_file = inputs / "metadata" / "index.csv"
    index = read_table(index_file, "DeepProfiler index")
    where = str(index_file)
    missing = [c for c in KEY_COLUMNS if c not in index.columns]
    if missing:
        raise DataError(f"{where}: no column {', '.join(missing)}; DeepProfiler's index needs {', '.join(KEY_COLUMNS)}")
    names = _channels(index, channels, where)
    keys = [f"{r.Metadata_Plate}/{r.Metadata_Well}-{r.Metadata_Site}" for r in index[list(KEY_COLUMNS)].itertuples()]
    if len(set(keys)) != len(keys):
        twice = pd.Series(keys)[pd.Series(keys).duplicated()].iloc[0]
        raise DataError(f"{where}: image {twice} (plate/well-site) appears more than once; each needs one row")
    x_column, y_column = f"{objects}_Location_Center_X", f"{objects}_Location_Center_Y"
    fields, parts, without = [], [], 0
    for row, key in enumerate(keys):
        plate, rest = key.split("/", 1)
        files = tuple(str(inputs / "images" / str(index[c].iloc[row])) for c in names)
        fields.append(Field(key, files, plate, where=f"index.csv row {row + 2}"))
        locations = inputs / "locations" / plate / f"{rest}-{objects}.csv"
        if not locations.is_file():
            without += 1
            continue
        table = read_table(locations, "DeepProfiler locations")
        if not {x_column, y_column} <= set(table.columns):
            raise DataError(
                f"{locations}: no {x_column}/{y_column} columns (it has {shown_list(list(table.columns), 10)}); "
                f"set dataset.objects to the object name of the locations files"
            )
        centres = table[[x_column, y_column]].apply(pd.to_numeric, errors="coerce")
        if centres.isna().any().any():
            bad = int(np.flatnonzero(centres.isna().any(axis=1).to_numpy())[0])
            raise DataError(f"{locations}: row {bad + 2} has no centre (empty, NaN or not a number); fix or drop it")
        part = index.iloc[[row] * len(table)][[c for c in index.columns if c not in names]].reset_index(drop=True)
        part["ObjectNumber"] = np.arange(1, len(table) + 1)
        part[x_column], part[y_column] = centres[x_column].to_numpy(), centres[y_column].to_numpy()
        part[FIELD], part[X], part[Y], part[LABEL] = row, part[x_column], part[y_column], -1
        parts.append(part)
    if without:
        log.info(f"{inputs}: {without} of {len(keys)} images have no locations file (no {objects} objects)")
    if not parts:
        raise DataError(f"{inputs / 'locations'}: no <Plate>/<Well>-<Site>-{objects}.csv locations file")
    return FieldSet(fields, pd.concat(parts, ignore_index=True), tuple(names), inputs.parent, where)
