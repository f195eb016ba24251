"""The user's own images: any folder of png/jpg/tif files, with or without class sub-folders.

* ``root/<class>/**/*.png`` ...: one class per sub-folder (labels from folder names); images may sit
  in further sub-folders of a class folder (a log line says so).
* ``root/*.png`` ...: no labels; the map still works, label-based metrics are skipped.

Images of any size are resized to ``size`` x ``size`` once and cached, keeping their channels and
bit depth (:mod:`medviz.data.readers.images`: 8-bit photographs as RGB, fluorescence TIFFs with all
their channels in 16 bits); with ``channel_files`` one image is made of one file per channel
(:mod:`medviz.data.readers.channel_files`). Unreadable files are skipped with a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from medviz.bulk import paused_gc
from medviz.data.image_arrays import ImageArrays
from medviz.data.readers.channel_files import group_channel_files
from medviz.data.readers.file_walk import UNKNOWN, Run, files_below
from medviz.data.readers.images import IMAGE_SUFFIXES, TIFF_SUFFIXES, read_resized
from medviz.data.readers.tiff import ome_channel_names
from medviz.errors import DataError
from medviz.store.ingest import IngestReport, ingest
from medviz.store.location import cache_key, default_cache_dir
from medviz.store.read import open_store
from medviz.store.source_item import SourceItem

log = logging.getLogger("medviz")


def images_below(folder: Path) -> list[Path]:
    """Every image file in ``folder`` and its sub-folders (hidden ones skipped), sorted."""
    return [Path(file.payload) for file in files_below(folder)]


def _report_nesting(root: Path, runs: list[Run], images: int) -> None:
    """Say so when images lie below the class folders: they are labelled by their top-level folder."""
    nested = [(folder, count) for folder, count in runs if folder.count(os.sep) > 1]
    if nested:
        example = Path(nested[0][0])
        log.info(
            f"{root}: {sum(count for _, count in nested)} of {images} images lie in sub-folders of the class "
            f"folders (e.g. in {example}); each is labelled by its top-level folder ({example.parts[0]}). To "
            f"label by a deeper level, point dataset.path at the folder whose sub-folders are the classes "
            f"(e.g. {root / example.parts[0]})"
        )


def scan_folder(root: Path, stat: bool = True) -> tuple[list[SourceItem], list[str] | None]:
    """Image files (as store items, :func:`files_below`) and their class names (None when the
    folder has no class sub-folders).

    Classes are the top-level sub-folders; their images may sit at any depth below them. With
    ``stat=False`` the files are listed by name only. Classes and nesting are told per folder, not
    per file (a folder of 200,000 files has a handful of folders).
    """
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; set dataset.path to a folder of images")
    runs: list[Run] = []
    with paused_gc():
        found = files_below(root, stat, runs)
    loose = sum(count for folder, count in runs if not folder)
    class_of: list[str] = []
    for folder, count in runs:
        if folder:
            class_of.extend([folder.partition(os.sep)[0]] * count)
    class_dirs = sorted({folder.partition(os.sep)[0] for folder, _ in runs if folder})
    if class_dirs and loose:
        raise DataError(
            f"{root} mixes {loose} images at the top level with class sub-folders "
            f"({', '.join(class_dirs[:5])}): move the loose images into a class folder, "
            "or point dataset.path at a folder with only one of the two layouts"
        )
    if len(class_dirs) == 1:
        only = root / class_dirs[0]
        raise DataError(
            f"{root} has a single class folder '{only.name}' ({len(class_of)} images): a map needs no "
            f"labels, so point dataset.path at {only} (its sub-folders then become the classes, or its images "
            "an unlabelled map), or add folders for the other classes"
        )
    if class_dirs:
        _report_nesting(root, runs, len(found))
        return found, class_of
    if not loose:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {root} or its sub-folders")
    return found, None


#: Bumped when reading changes what a store holds (2: channels and bit depth kept; 3: the store; 4: its
#: index counts rows per item), so older stores are not trusted.
READER_VERSION = 4


def folder_items(root: Path, items: Sequence[SourceItem | Path | tuple[Path, ...]]) -> list[SourceItem]:
    """The store's view of a folder: one item per image (or per group of channel files), keyed by
    its path relative to ``root``; its size and mtime tell a changed file from the one stored.
    Files listed by :func:`files_below` are store items already."""
    if all(type(item) is SourceItem for item in items):
        return list(items)
    out = []
    prefix = str(root).rstrip(os.sep) + os.sep

    def relative(name: str) -> str:
        return name[len(prefix) :] if name.startswith(prefix) else str(Path(name).relative_to(root))

    for item in items:
        if isinstance(item, SourceItem):
            out.append(item)
            continue
        paths = (item,) if isinstance(item, Path) else tuple(item)
        stats = [os.stat(p) for p in paths]
        key = "\t".join(relative(str(p)) for p in paths)
        size, mtime = sum(st.st_size for st in stats), max(st.st_mtime_ns for st in stats)
        out.append(SourceItem(key, size, mtime, item))
    return out


def folder_store(
    root: Path, size: int, channel_files: list[str] | None, cache_dir: str | None, kind: str = "folder"
) -> Path:
    """Where a folder's store lives: one per folder, image size and channel layout (not per file
    list, so adding or removing files updates the same store)."""
    key = cache_key(root=str(root), size=size, channel_files=list(channel_files or []), reader=READER_VERSION)
    return Path(cache_dir or default_cache_dir()) / "stores" / f"{kind}-{root.name}-{size}px-{key}"


#: How an ingest tells which files changed (``dataset.ingest_check``).
CHECKS = ("stat", "names")


def ingest_folder(
    path: str,
    size: int = 28,
    cache_dir: str | None = None,
    channel_files: list[str] | None = None,
    workers: int | None = None,
    check: str = "stat",
) -> tuple[Path, IngestReport]:
    """Build or update the store of a folder (see :func:`load_folder`); returns its folder and what changed."""
    root = Path(path).expanduser().resolve()
    files, _ = scan_folder(root, stat=_by_stat(check))
    return ingest_files(root, files, size, cache_dir, channel_files, workers, check=check)


def _by_stat(check: str) -> bool:
    if check not in CHECKS:
        raise DataError(f"dataset.ingest_check={check} is not known; choose stat (the default) or names")
    return check == "stat"


def _with_version(item: SourceItem) -> SourceItem:
    """``item`` with the size and mtime of its file (for files listed by name only)."""
    if item.size != UNKNOWN:
        return item
    info = os.stat(item.payload)
    return item._replace(size=info.st_size, mtime_ns=info.st_mtime_ns)


def ingest_files(
    root: Path,
    files: Sequence[SourceItem | Path],
    size: int,
    cache_dir: str | None = None,
    channel_files: list[str] | None = None,
    workers: int | None = None,
    kind: str = "folder",
    check: str = "stat",
) -> tuple[Path, IngestReport]:
    """Bring the store of ``files`` below ``root`` up to date (any source made of image files).

    ``check``: ``stat`` compares every file's size and mtime with the stored ones (a file rewritten
    in place is read again); ``names`` compares the names only and stats the new files alone, for
    folders whose files are only ever added or removed (much faster on network file systems).
    """
    if channel_files:
        files = group_channel_files(
            [Path(f.payload) if isinstance(f, SourceItem) else f for f in files], channel_files, root
        )
    store_dir = folder_store(root, size, channel_files, cache_dir, kind)
    stat_new = None if _by_stat(check) else _with_version
    with paused_gc():
        items = folder_items(root, files)
    report = ingest(store_dir, items, partial(read_resized, size=size), str(root), workers, stat_new=stat_new)
    if report.added or report.removed:
        log.info(f"{root}: store {store_dir}: {report}")
    return store_dir, report


def load_folder(
    path: str,
    size: int = 28,
    cache_dir: str | None = None,
    channel_files: list[str] | None = None,
    workers: int | None = None,
    check: str = "stat",
) -> ImageArrays:
    """Load a folder of images through its store (built on first use, updated when files change).

    Args:
        path: the folder.
        size: image side after resizing (28 matches the paper's MedMNIST-sized images).
        cache_dir: where the store goes (default ``$MEDVIZ_CACHE`` or ~/.cache/medviz).
        channel_files: one file-name pattern per channel (``["*_w1.tif", ...]``) when each image
            is one file per channel; None: one file per image.
        workers: processes that decode new images (default: every core).
        check: how changed files are found: ``stat`` (size and mtime of every file) or ``names``
            (names only; see :func:`ingest_files`).
    """
    root = Path(path).expanduser().resolve()
    files, classes = scan_folder(root, stat=_by_stat(check))
    store_dir, report = ingest_files(root, files, size, cache_dir, channel_files, workers, check=check)
    stored = open_store(store_dir)
    if not stored.keys:
        raise DataError(f"none of the {len(stored.unreadable)} images in {root} could be read")
    if stored.unreadable and not report.unreadable:
        log.warning(
            f"{root}: {len(stored.unreadable)} unreadable images stay skipped until they change "
            f"(e.g. {stored.unreadable[0]})"
        )
    kept_files = [root / key.split("\t")[0] for key in stored.keys]
    if classes is None:
        labels = np.full(len(kept_files), -1, dtype=np.int64)
        names: tuple[str, ...] = ()
        log.info(f"{root}: no class sub-folders, the map is unlabelled (kNN and silhouette are skipped)")
    else:
        folder_of = [f.relative_to(root).parts[0] for f in kept_files]
        names = tuple(sorted(set(folder_of)))
        labels = np.array([names.index(c) for c in folder_of], dtype=np.int64)
    return ImageArrays(
        images=stored.images,  # memory-mapped: read into RAM if it fits speed.ram_budget (medviz.data.prepare.memory)
        labels=labels,
        class_names=names,
        name=root.name,
        files=kept_files,
        cache_file=store_dir / f"generation-{stored.generation}",
        channel_names=channel_names_of(kept_files[0], channel_files, stored.images.shape[-1]),
    )


def channel_names_of(first: Path, channel_files: list[str] | None, channels: int) -> tuple[str, ...] | None:
    """The channels' names the data give: each ``dataset.channel_files`` pattern's own part
    (``*_DNA.tif`` -> ``DNA``), else an OME-TIFF's metadata; None when they give none, or a count
    other than the images' (``dataset.channel_names`` names them then)."""
    if channel_files:
        names = tuple(Path(pattern.replace("*", "")).stem.strip("_-. ") for pattern in channel_files)
    elif first.suffix.lower() in TIFF_SUFFIXES:
        names = ome_channel_names(first) or ()
    else:
        return None
    if not names or not all(names):
        return None
    if len(names) != channels:
        log.info(f"{first}: the data name {len(names)} channels but the images have {channels}: names not used")
        return None
    return names
