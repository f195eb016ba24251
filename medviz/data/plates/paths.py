"""Finding a table's image files on this machine.

CellProfiler writes the absolute paths of the machine that ran it (``/home/lab/plate1/...``); a
table moved to another machine or a cluster names files that are not there. ``dataset.images_root``
re-roots them: each folder of the table is matched, once, to the longest trailing part of its path
found under the root (``/home/lab/screen/plate1/A01_s1.tif`` -> ``<root>/plate1/A01_s1.tif`` or
``<root>/screen/plate1/A01_s1.tif``); the log says once how paths were re-rooted.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath, PureWindowsPath

from medviz.errors import DataError

log = logging.getLogger("medviz")


def _parts(folder: str) -> tuple[str, ...]:
    """A folder's parts, whichever system wrote it (``C:\\data\\p1`` and ``/data/p1`` alike)."""
    pure = (
        PureWindowsPath(folder) if "\\" in folder or (len(folder) > 1 and folder[1] == ":") else PurePosixPath(folder)
    )
    return tuple(p for p in pure.parts if p not in (pure.anchor, "/", "\\"))


class PathFinder:
    """Where a table's files are: as written, relative to the table's folder, or re-rooted.

    Args:
        tables: the folder of the tables (relative paths are read from there).
        root: ``dataset.images_root``, or None.
        what: the source and the setting to name in errors.
    """

    def __init__(self, tables: Path, root: str | None, what: str) -> None:
        self.tables = tables
        self.root = Path(root).expanduser().resolve() if root else None
        if self.root is not None and not self.root.is_dir():
            raise DataError(f"dataset.images_root={root} is not a folder")
        self.what = what
        self._folders: dict[str, Path] = {}
        self._said = False

    def file(self, folder: str, name: str, where: str) -> Path:
        """The file ``name`` of the table's ``folder`` on this machine; refused naming it and the fix."""
        found = self._folders.get(folder)
        if found is None:
            found = self._find_folder(folder, name, where)
            self._folders[folder] = found
        return found / name

    def _find_folder(self, folder: str, name: str, where: str) -> Path:
        written = Path(folder).expanduser() if folder else self.tables
        candidates = [written if written.is_absolute() else self.tables / written]
        if self.root is not None:
            parts = _parts(folder)
            candidates = [self.root.joinpath(*parts[i:]) for i in range(len(parts) + 1)] + candidates
        for candidate in candidates:
            if (candidate / name).is_file():
                if self.root is not None and candidate != candidates[-1] and not self._said:
                    self._said = True
                    log.info(f"{self.what}: image paths re-rooted: {folder} -> {candidate} (and alike for the rest)")
                return candidate
        if self.root is None:
            raise DataError(
                f"{self.what}: {Path(folder) / name} ({where}) does not exist on this machine; if the tables were "
                "written on another machine, set dataset.images_root=<the folder that holds the images here>"
            )
        raise DataError(
            f"{self.what}: {Path(folder) / name} ({where}) is not under dataset.images_root={self.root} by any "
            "trailing part of its path; point dataset.images_root at the folder that holds the images"
        )
