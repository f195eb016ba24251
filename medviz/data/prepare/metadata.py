"""Per-image metadata: a table joined to the images by a key, a plate map joined to it, and the
classes (``dataset.label``) and technical batches (``dataset.batch``) taken from its columns.

"Batch" here is always the technical batch -- plate, slide, hospital, experiment, staining day --
never the number of images per training step.

Images are matched to rows by identity: a folder's images by their path relative to
``dataset.path`` (``a/cell_001.png``), arrays and the built-in sets by their row number. An image
without a row is an error; a row without an image (another subset, a file removed) a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from medviz.data.image_arrays import ImageArrays
from medviz.data.prepare.subset import select_rows
from medviz.data.readers.tables import read_table
from medviz.errors import ConfigError, DataError
from medviz.text import shown_list

log = logging.getLogger("medviz")

#: The key column of images read from files: the path relative to ``dataset.path``, with '/'.
PATH_KEY = "path"
#: The key column of arrays and built-in sets: the image's row number (0-based).
INDEX_KEY = "index"


@dataclass(frozen=True)
class MetadataOptions:
    """The ``dataset.*`` settings of this module (docs/datasets.md, "Metadata").

    Attributes:
        table: a CSV/CSV.gz/TSV/Parquet file, one row per image; None: the data's own metadata only.
        key: the table's column that names each image; None: ``path`` for images from files, else ``index``.
        platemap: a table joined many-to-one on the columns it shares with the metadata (e.g.
            ``Metadata_Plate`` and ``Metadata_Well``).
        label: the column whose values become the classes (instead of class folders).
        batch: the column that names each image's technical batch.
        drop_missing: images with no value in ``label`` or ``batch`` are dropped (and counted)
            instead of refused.
        kept: the table a finished run trained on (its ``metadata.parquet``), used instead of
            ``table`` and ``platemap``: a finished run is shown with the rows it trained on, whatever
            the table says now, and images added to the dataset since (no row here) are left out.
    """

    table: str | None = None
    key: str | None = None
    platemap: str | None = None
    label: str | None = None
    batch: str | None = None
    drop_missing: bool = False
    kept: pd.DataFrame | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.table, self.platemap, self.label, self.batch, self.kept))


def image_keys(data: ImageArrays, root: Path | None) -> tuple[str, list[str] | np.ndarray]:
    """The key column's name and each image's key: relative paths for images from files, else row numbers.

    Data that carry their own ``path`` column (crops: ``<plate>/<image>/<object>``) are keyed by it.
    """
    if data.metadata is not None and PATH_KEY in data.metadata.columns:
        return PATH_KEY, [str(p) for p in data.metadata[PATH_KEY]]
    if data.files is not None and root is not None:
        return PATH_KEY, relative_paths(data.files, root)
    return INDEX_KEY, np.arange(len(data), dtype=np.int64)


def relative_paths(files, root: str | Path | None) -> list[str]:
    """Each file's path relative to ``root`` with '/' (a file outside it, or no root: its whole path)."""
    base = Path(root).expanduser().resolve() if root else None
    paths = []
    for file in files:
        try:
            paths.append(Path(file).relative_to(base).as_posix() if base else Path(file).as_posix())
        except ValueError:
            paths.append(Path(file).as_posix())
    return paths


def attach_metadata(data: ImageArrays, options: MetadataOptions, root: Path | None = None) -> ImageArrays:
    """``data`` with ``metadata`` (one row per image, key column first), its classes from
    ``options.label`` and its batch column set; images missing a label or batch dropped when asked.

    ``root`` is ``dataset.path`` for images read from files (their keys are paths relative to it).
    """
    if not options.any:
        return data
    key_name, keys = image_keys(data, root)
    if options.kept is not None:
        data, table = _rows_kept(data, key_name, keys, options.kept)
    else:
        table = data.metadata.copy() if data.metadata is not None else pd.DataFrame({key_name: keys})
        if options.table is not None:
            table = _join_table(table, key_name, keys, options)
        if options.platemap is not None:
            table = _join_platemap(table, options.platemap, key_name)
    table = as_categories(table, keep=key_name)
    data = replace(data, metadata=table)
    wanted = [c for c in (options.label, options.batch) if c is not None]
    for column in wanted:
        if column not in table.columns:
            raise ConfigError(
                f"dataset.{'label' if column == options.label else 'batch'}={column}: no such column; "
                f"the metadata has {shown_list(list(table.columns), 30)}"
            )
    if wanted:
        data = _drop_or_refuse_missing(data, wanted, key_name, options.drop_missing)
    if options.label is not None:
        data = labels_from_column(data, options.label)
    if options.batch is not None:
        data = replace(data, batch_column=options.batch)
    return data


def describe_batches(data: ImageArrays) -> str | None:
    """One log line: the technical batch column and each batch's image count; None without one."""
    batches = data.batches()
    if batches is None:
        return None
    codes, names = batches
    counts = np.bincount(codes, minlength=len(names))
    listed = ", ".join(f"{name} {n}" for name, n in zip(names, counts, strict=True))
    return f"technical batches from column {data.batch_column}: {listed}"


def _rows_kept(data: ImageArrays, key_name: str, keys, kept: pd.DataFrame) -> tuple[ImageArrays, pd.DataFrame]:
    """The images that have a row in a finished run's table ``kept`` and their rows (one per image,
    in the images' order). Planted duplicates (``qc.inject``) repeat their source's key: the first
    row of each key is the image's own; the planting is done again after this."""
    if key_name not in kept.columns:
        raise DataError(
            f"the run's metadata table has no column {key_name} (its columns: {shown_list(list(kept.columns), 10)}); "
            "it was written for other data: train the run again"
        )
    own = kept.drop_duplicates(subset=key_name, keep="first")
    own = own.set_index(pd.Index(own[key_name].to_numpy()))
    present = pd.Index(keys).isin(own.index)
    if not present.all():
        log.info(
            f"{int((~present).sum())} images of the dataset were not in this run (added since); the map shows "
            "the images it trained on"
        )
        data = select_rows(data, np.flatnonzero(present))
        keys = [k for k, here in zip(keys, present, strict=True) if here]
    return data, own.loc[list(keys)].reset_index(drop=True)


def _join_table(current: pd.DataFrame, key_name: str, keys, options: MetadataOptions) -> pd.DataFrame:
    path = options.table
    table = read_table(path, "dataset.metadata")
    key = options.key or key_name
    expected = (
        f"paths relative to dataset.path, such as {str(keys[0])!r}" if key_name == PATH_KEY else "row numbers from 0"
    )
    if key not in table.columns:
        raise DataError(
            f"dataset.metadata={path}: no key column {key}; its columns are {shown_list(list(table.columns), 30)}. "
            f"Name the column that identifies each image with dataset.metadata_key=<column> ({expected})"
        )
    values = table[key]
    if key_name == PATH_KEY:
        values = values.astype(str).str.replace("\\", "/", regex=False).str.removeprefix("./")
    else:
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.isna().any() or (numbers % 1 != 0).any():
            bad = values[numbers.isna() | (numbers % 1 != 0)].iloc[0]
            raise DataError(f"dataset.metadata={path}: key column {key} holds {bad!r}, not a row number")
        values = numbers.astype(np.int64)
    duplicated = values[values.duplicated()]
    if len(duplicated):
        raise DataError(
            f"dataset.metadata={path}: {len(duplicated)} keys of column {key} appear more than once "
            f"(e.g. {duplicated.iloc[0]!r}); each image needs exactly one row"
        )
    table = table.drop(columns=[key]).set_index(pd.Index(values, name=key_name))
    clash = [c for c in table.columns if c in current.columns and c != key_name]
    if clash:
        raise DataError(
            f"dataset.metadata={path}: columns {shown_list(clash, 10)} are already the data's own metadata; rename them"
        )
    wanted = pd.Index(keys)
    missing = wanted[~wanted.isin(table.index)]
    if len(missing):
        raise DataError(
            f"dataset.metadata={path}: {len(missing)} of the {len(wanted)} images have no row, e.g. "
            f"{shown_list([str(m) for m in missing], 5)} (key column {key}"
            + (
                f", paths relative to dataset.path such as {str(keys[0])!r})"
                if key_name == PATH_KEY
                else ", row numbers)"
            )
        )
    extra = len(table) - int(table.index.isin(wanted).sum())
    if extra:
        log.warning(f"dataset.metadata={path}: {extra} of its {len(table)} rows name no image of the dataset; not used")
    joined = table.loc[wanted].reset_index(drop=True)
    return pd.concat([current.reset_index(drop=True), joined], axis=1)


def _join_platemap(table: pd.DataFrame, path: str, key_name: str) -> pd.DataFrame:
    platemap = read_table(path, "dataset.platemap")
    shared = [c for c in platemap.columns if c in table.columns and c != key_name]
    if not shared:
        raise DataError(
            f"dataset.platemap={path}: shares no column with the metadata (its columns: "
            f"{shown_list(list(platemap.columns), 20)}; the metadata's: {shown_list(list(table.columns), 20)}); "
            "a plate map is joined on the columns both tables have, such as Metadata_Plate and Metadata_Well"
        )
    twice = platemap.duplicated(subset=shared)
    if twice.any():
        example = ", ".join(f"{c}={platemap.loc[twice, c].iloc[0]}" for c in shared)
        raise DataError(f"dataset.platemap={path}: {int(twice.sum())} rows repeat a {'/'.join(shared)} ({example})")
    left = table[shared].astype(str)
    right = platemap.copy()
    right[shared] = right[shared].astype(str)  # a well named A01 in one table and A01 in the other, whatever the types
    merged = left.merge(right, on=shared, how="left", indicator=True)
    unmatched = int((merged["_merge"] == "left_only").sum())
    if unmatched:
        log.warning(
            f"dataset.platemap={path}: {unmatched} of {len(table)} images have no row for their {'/'.join(shared)}; "
            "their plate-map columns are empty"
        )
    added = merged.drop(columns=[*shared, "_merge"])
    return pd.concat([table.reset_index(drop=True), added.reset_index(drop=True)], axis=1)


def as_categories(table: pd.DataFrame, keep: str) -> pd.DataFrame:
    """Text columns as categories (values sorted), numbers as numbers; the key column ``keep`` as it is."""
    table = table.copy()
    for column in table.columns:
        if column == keep or pd.api.types.is_numeric_dtype(table[column]) or table[column].dtype == "category":
            continue
        if pd.api.types.is_bool_dtype(table[column]):
            continue
        table[column] = table[column].astype("string").astype("category")
    return table


def _drop_or_refuse_missing(data: ImageArrays, columns: list[str], key_name: str, drop: bool) -> ImageArrays:
    table = data.metadata
    missing = table[columns].isna().any(axis=1).to_numpy()
    if not missing.any():
        return data
    where = [str(k) for k in table.loc[missing, key_name].head(5)]
    said = f"{int(missing.sum())} of {len(table)} images have no {' or '.join(columns)} (e.g. {', '.join(where)})"
    if not drop:
        raise DataError(f"{said}; fill them in, or set dataset.drop_missing=true to leave those images out")
    if missing.all():
        raise DataError(f"{said}: no image is left")
    log.warning(f"{said}: left out (dataset.drop_missing=true)")
    return select_rows(data, np.flatnonzero(~missing))


def labels_from_column(data: ImageArrays, column: str) -> ImageArrays:
    """Classes from the metadata column ``column``: one class per value (numbers in order, text sorted)."""
    values = data.metadata[column]
    if values.dtype == "category":
        names = [str(c) for c in values.cat.categories]
        codes = values.cat.codes.to_numpy().astype(np.int64)
        present = np.unique(codes[codes >= 0])
        names = [names[i] for i in present]  # categories that no image has are no classes
        codes = np.searchsorted(present, codes)
    else:
        uniques = np.unique(values.to_numpy())
        names = [_number_text(u) for u in uniques]
        codes = np.searchsorted(uniques, values.to_numpy()).astype(np.int64)
    log.info(f"classes from column {column}: {len(names)} ({shown_list(names, 8)})")
    return replace(data, labels=codes.astype(np.int64), class_names=tuple(names), label_column=column)


def _number_text(value) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else str(value)
