"""Datasets that are a metadata table naming one image file per row (the WILDS benchmarks' layout).

The table decides which files are read and what each image's metadata is; images are matched to
their rows by path, never by position. A row whose file is missing or unreadable is skipped and
counted, with an example, so one lost file never stops the rest.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from medviz.data.image_arrays import ImageArrays
from medviz.data.sources.folder import ingest_files
from medviz.errors import DataError
from medviz.store.read import open_store

log = logging.getLogger("medviz")


def table_dataset(
    root: Path,
    table: pd.DataFrame,
    paths: list[str],
    name: str,
    label: str | None,
    batch: str | None,
    size: int,
    cache_dir: str | None = None,
    workers: int | None = None,
) -> ImageArrays:
    """The images ``paths`` (relative to ``root``, one per row of ``table``) with the table as metadata.

    ``label``/``batch``: columns of the classes and of the technical batch (``dataset.label`` and
    ``dataset.batch`` may name others later). Rows whose file is missing or unreadable are left out.
    """
    table = table.reset_index(drop=True).copy()
    table.insert(0, "path", paths)
    if table["path"].duplicated().any():
        twice = table.loc[table["path"].duplicated(), "path"].iloc[0]
        raise DataError(f"{root}: the metadata table names {twice} more than once; each row must be its own image")
    present = np.array([(root / p).is_file() for p in paths])
    if not present.any():
        raise DataError(
            f"{root}: none of the {len(paths)} images its metadata names exists (e.g. {root / paths[0]}); "
            "point dataset.path at the folder that holds metadata.csv and the images"
        )
    if not present.all():
        log.warning(
            f"{root}: {int((~present).sum())} of the {len(paths)} images in its metadata are missing and left out "
            f"(e.g. {paths[int(np.flatnonzero(~present)[0])]})"
        )
    files = [root / p for p in np.asarray(paths)[present]]
    store_dir, _ = ingest_files(root, files, size, cache_dir, workers=workers, kind=name)
    stored = open_store(store_dir)
    if not stored.keys:
        raise DataError(f"none of the images of {root} could be read")
    kept = [key.split("\t")[0] for key in stored.keys]
    rows = table.set_index("path").loc[kept].reset_index()  # by path: the store's order is its own
    unread = int(present.sum()) - len(kept)
    if unread:
        log.warning(f"{root}: {unread} images could not be read and are left out (see the warnings above)")
    labels, class_names = _labels(rows, label)
    return ImageArrays(
        images=stored.images,
        labels=labels,
        class_names=class_names,
        name=name,
        files=[root / p for p in kept],
        cache_file=store_dir / f"generation-{stored.generation}",
        metadata=rows,
        label_column=label,
        batch_column=batch,
    )


def _labels(rows: pd.DataFrame, column: str | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class codes (N,) and names from ``column`` (sorted as text); unlabelled without one."""
    if column is None:
        return np.full(len(rows), -1, np.int64), ()
    codes, names = pd.factorize(rows[column].astype(str), sort=True)
    return codes.astype(np.int64), tuple(str(n) for n in names)


def read_table(path: Path, what: str, **read_csv) -> pd.DataFrame:
    """A benchmark's metadata CSV, refused with the fix when it is missing."""
    if not path.is_file():
        raise DataError(f"{path} not found: point dataset.path at the {what} folder (the one holding metadata.csv)")
    return pd.read_csv(path, **read_csv)


def require_columns(table: pd.DataFrame, columns: list[str], path: Path) -> None:
    """Refuse a table without the columns its layout defines, naming them."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(
            f"{path} lacks the column(s) {', '.join(missing)} of its layout "
            f"(it has {', '.join(map(str, table.columns))})"
        )
