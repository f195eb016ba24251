"""Per-image tables as profiling tools write them: CSV (also gzipped), TSV and Parquet.

Columns keep their names exactly (``Metadata_Plate`` stays ``Metadata_Plate``) and their types:
numbers stay numbers, everything else is text, turned into categories where they are joined to
images (:mod:`medviz.data.prepare.metadata`). Nothing in a table is evaluated: values are data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from medviz.errors import DataError

#: The table formats read, by how a file name ends.
TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".parquet", ".pq")


def read_table(path: str | Path, what: str = "table", columns: Callable[[str], bool] | None = None) -> pd.DataFrame:
    """The table in ``path`` with a fresh 0..n-1 index; ``what`` names it in errors (e.g. ``dataset.metadata``).

    ``columns``: read only the columns it accepts (an object table of thousands of feature columns
    is read as the few it needs).

    Identifier-like columns (plate names such as ``0001``, wells such as ``A01``) would lose their
    leading zeros as numbers: a CSV column is read as numbers only when every value is one and
    none has a leading zero.
    """
    file = Path(path).expanduser()
    name = file.name.lower()
    if not file.is_file():
        raise DataError(f"{what}={path}: no such file")
    if not name.endswith(TABLE_SUFFIXES):
        raise DataError(f"{what}={path}: not a table medviz reads; give a .csv, .csv.gz, .tsv or .parquet file")
    try:
        if name.endswith((".parquet", ".pq")):
            wanted = None
            if columns is not None:
                import pyarrow.parquet as pq

                wanted = [c for c in pq.read_schema(file).names if columns(c)]
            table = pd.read_parquet(file, columns=wanted)
        else:
            separator = "\t" if name.endswith((".tsv", ".tsv.gz", ".txt")) else ","
            table = _typed(
                pd.read_csv(file, sep=separator, dtype=str, keep_default_na=False, na_values=[""], usecols=columns)
            )
    except (OSError, ValueError, ImportError) as err:  # pandas' parser errors are ValueErrors
        raise DataError(f"{what}={path}: could not be read as a table ({type(err).__name__}: {err})") from err
    if table.columns.duplicated().any():
        twice = sorted({str(c) for c in table.columns[table.columns.duplicated()]})
        raise DataError(f"{what}={path}: column names appear more than once: {', '.join(twice)}")
    table.columns = [str(c) for c in table.columns]
    return table.reset_index(drop=True)


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """Text columns of a CSV read as text, turned into numbers where every value is a plain number."""
    for column in table.columns:
        values = table[column].dropna()
        if values.empty or values.str.match(r"^[+-]?0\d").any():  # 0001, 007: identifiers, kept as text
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.notna().all():
            table[column] = pd.to_numeric(table[column])
    return table
