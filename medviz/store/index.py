"""The store's index: which source item sits in which row of the image file (SQLite, one file).

One table ``items``: an item's ``key`` (its path relative to the source root; for one file per
channel, the channel files' paths joined by tabs; for a block of an array file, the array and its
first row), the ``size`` and ``mtime_ns`` it had when it was read (a changed file is read again),
its first ``row`` in the image file, or -1 when it could not be read (it is not tried again until it
changes), and its ``count`` of rows (1 for an image file, the block's length for arrays). One
table ``meta``: the committed row count, the image shape and dtype, and the content generation
(bumped by every change, so statistics kept for one generation are never used for another).

Every change is one SQLite transaction: a killed ingest leaves the index as of its last commit,
and rows written to the image file after that commit are cut off when the store is next opened.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from medviz.errors import DataError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, row INTEGER NOT NULL, count INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS items_row ON items(row);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Entry(NamedTuple):  # a tuple: a store lists hundreds of thousands
    """One indexed item: its key, the size and mtime it was read with, its first row (-1: unreadable)
    and how many rows it has."""

    key: str
    size: int
    mtime_ns: int
    row: int
    count: int = 1


class StoreIndex:
    """The SQLite index of one store; use as a context manager to close it."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        try:
            if read_only:
                self.db = _connect_read_only(path)
                self.db.execute("SELECT count(*) FROM items").fetchone()
                return
            self.db = sqlite3.connect(path, isolation_level=None)  # transactions are explicit (BEGIN ... COMMIT)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:  # not a database, truncated, or of another program
            if isinstance(err, sqlite3.OperationalError) and "readonly" in str(err):
                raise
            raise DataError(
                f"the store index {path} is damaged ({err}): delete the folder {path.parent} and the next run "
                "(or medviz ingest) builds it again"
            ) from err

    def __enter__(self) -> StoreIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.db.close()

    # ------------------------------------------------------------------ meta
    def meta(self, name: str, default=None):
        found = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return json.loads(found[0]) if found else default

    @property
    def rows(self) -> int:
        """Rows of the image file that are committed (later rows are a killed ingest's and ignored)."""
        return int(self.meta("rows", 0))

    @property
    def generation(self) -> int:
        return int(self.meta("generation", 0))

    # ------------------------------------------------------------------ items
    def entries(self) -> dict[str, Entry]:
        """Every indexed item by key."""
        cursor = self.db.execute("SELECT key, size, mtime_ns, row, count FROM items")
        return {row[0]: Entry._make(row) for row in cursor}

    def keys(self) -> set[str]:
        """The key of every indexed item."""
        return set(map(itemgetter(0), self.db.execute("SELECT key FROM items")))

    def versions(self) -> set[tuple[str, int, int]]:
        """(key, size, mtime_ns) of every indexed item: compared with a source's as sets, in C."""
        return set(self.db.execute("SELECT key, size, mtime_ns FROM items"))

    def unreadable_keys(self) -> list[str]:
        """The keys of the items that could not be read, sorted."""
        return [key for (key,) in self.db.execute("SELECT key FROM items WHERE row < 0 ORDER BY key")]

    def readable_in_row_order(self) -> list[Entry]:
        """The readable items, in the order of their rows (the dataset's order)."""
        cursor = self.db.execute("SELECT key, size, mtime_ns, row, count FROM items WHERE row >= 0 ORDER BY row")
        return [Entry._make(row) for row in cursor]

    def commit(
        self,
        added: Iterable[Entry] = (),
        removed: Iterable[str] = (),
        moved: dict[int, int] | None = None,
        meta: dict | None = None,
    ) -> None:
        """One transaction: remove keys, renumber rows (old -> new), add entries, set meta values."""
        with_meta = dict(meta or {})
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany("DELETE FROM items WHERE key = ?", ((key,) for key in removed))
            if moved:
                # Rows only move down (compaction keeps their order), so updating in ascending
                # order never gives two items one row at the same time.
                self.db.executemany(
                    "UPDATE items SET row = ? WHERE row = ?", ((new, old) for old, new in sorted(moved.items()))
                )
            self.db.executemany(
                "INSERT OR REPLACE INTO items (key, size, mtime_ns, row, count) VALUES (?, ?, ?, ?, ?)",
                added,
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                ((name, json.dumps(value)) for name, value in with_meta.items()),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection: one that sees an ingest's commits where the folder is writable, else
    (a read-only file system or a shared cache without write permission, where nobody can be writing)
    the file as it stands."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        db.execute("SELECT count(*) FROM meta").fetchone()
        return db
    except sqlite3.OperationalError:
        return sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True, isolation_level=None)
