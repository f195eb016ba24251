"""The user's own images: any folder of png/jpg/tif files, with or without class sub-folders.

* ``root/<class>/**/*.png`` ...: one class per sub-folder (labels from folder names); images may sit
  in further sub-folders of a class folder (a log line says so).
* ``root/*.png`` ...: no labels; the map still works, label-based metrics are skipped.

Images of any size are resized to ``size`` x ``size`` once and cached, keeping their channels and
bit depth (:mod:`medviz.data.images_io`: 8-bit photographs as RGB, fluorescence TIFFs with all
their channels in 16 bits); with ``channel_files`` one image is made of one file per channel
(:mod:`medviz.data.channel_files`). Unreadable files are skipped with a warning.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import numpy as np

from medviz.data.arrays import ImageArrays
from medviz.data.cache import cache_key, default_cache_dir
from medviz.data.channel_files import group_channel_files
from medviz.data.errors import DataError
from medviz.data.images_io import IMAGE_SUFFIXES, read_resized
from medviz.store.ingest import IngestReport, SourceItem, ingest
from medviz.store.read import open_store

log = logging.getLogger("medviz")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def images_below(folder: Path) -> list[Path]:
    """Every image file in ``folder`` and its sub-folders (hidden ones skipped), sorted."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in p.parts)
    )


def _report_nesting(root: Path, files: list[Path]) -> None:
    """Say so when images lie below the class folders: they are labelled by their top-level folder."""
    nested = [f for f in files if len(f.relative_to(root).parts) > 2]
    if nested:
        example = nested[0].relative_to(root)
        log.info(
            f"{root}: {len(nested)} of {len(files)} images lie in sub-folders of the class folders (e.g. {example}); "
            f"each is labelled by its top-level folder ({example.parts[0]}). To label by a deeper level, point "
            f"dataset.path at the folder whose sub-folders are the classes (e.g. {root / example.parts[0]})"
        )


def scan_folder(root: Path) -> tuple[list[Path], list[str] | None]:
    """Image files and their class names (None when the folder has no class sub-folders).

    Classes are the top-level sub-folders; their images may sit at any depth below them.
    """
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; set dataset.path to a folder of images")
    subfolders = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    class_files = {d: images_below(d) for d in subfolders}
    class_dirs = [d for d in subfolders if class_files[d]]
    loose = _images_in(root)
    if class_dirs and loose:
        raise DataError(
            f"{root} mixes {len(loose)} images at the top level with class sub-folders "
            f"({', '.join(d.name for d in class_dirs[:5])}): move the loose images into a class folder, "
            "or point dataset.path at a folder with only one of the two layouts"
        )
    if len(class_dirs) == 1:
        only = class_dirs[0]
        raise DataError(
            f"{root} has a single class folder '{only.name}' ({len(class_files[only])} images): a map needs no "
            f"labels, so point dataset.path at {only} (its sub-folders then become the classes, or its images "
            "an unlabelled map), or add folders for the other classes"
        )
    if class_dirs:
        files = [f for d in class_dirs for f in class_files[d]]
        _report_nesting(root, files)
        return files, [f.relative_to(root).parts[0] for f in files]
    if not loose:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {root} or its sub-folders")
    return loose, None


#: Bumped when reading changes what a store holds (2: channels and bit depth kept; 3: the store), so
#: older stores are not trusted.
READER_VERSION = 3


def folder_items(root: Path, items: list[Path] | list[tuple[Path, ...]]) -> list[SourceItem]:
    """The store's view of a folder: one item per image (or per group of channel files), keyed by
    its path relative to ``root``; its size and mtime tell a changed file from the one stored."""
    out = []
    for item in items:
        paths = (item,) if isinstance(item, Path) else tuple(item)
        stats = [p.stat() for p in paths]
        key = "\t".join(str(p.relative_to(root)) for p in paths)
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


def ingest_folder(
    path: str,
    size: int = 28,
    cache_dir: str | None = None,
    channel_files: list[str] | None = None,
    workers: int | None = None,
) -> tuple[Path, IngestReport]:
    """Build or update the store of a folder (see :func:`load_folder`); returns its folder and what changed."""
    root = Path(path).expanduser().resolve()
    files, _ = scan_folder(root)
    return ingest_files(root, files, size, cache_dir, channel_files, workers)


def ingest_files(
    root: Path,
    files: list[Path],
    size: int,
    cache_dir: str | None = None,
    channel_files: list[str] | None = None,
    workers: int | None = None,
    kind: str = "folder",
) -> tuple[Path, IngestReport]:
    """Bring the store of ``files`` below ``root`` up to date (any source made of image files)."""
    groups = group_channel_files(files, list(channel_files), root) if channel_files else files
    store_dir = folder_store(root, size, channel_files, cache_dir, kind)
    report = ingest(store_dir, folder_items(root, groups), partial(read_resized, size=size), str(root), workers)
    if report.added or report.removed:
        log.info(f"{root}: store {store_dir}: {report}")
    return store_dir, report


def load_folder(
    path: str,
    size: int = 28,
    cache_dir: str | None = None,
    channel_files: list[str] | None = None,
    workers: int | None = None,
) -> ImageArrays:
    """Load a folder of images through its store (built on first use, updated when files change).

    Args:
        path: the folder.
        size: image side after resizing (28 matches the paper's MedMNIST-sized images).
        cache_dir: where the store goes (default ``$MEDVIZ_CACHE`` or ~/.cache/medviz).
        channel_files: one file-name pattern per channel (``["*_w1.tif", ...]``) when each image
            is one file per channel; None: one file per image.
        workers: processes that decode new images (default: every core).
    """
    root = Path(path).expanduser().resolve()
    files, classes = scan_folder(root)
    store_dir, report = ingest_files(root, files, size, cache_dir, channel_files, workers)
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
        images=stored.images,  # memory-mapped: read into RAM if it fits speed.ram_budget (medviz.data.memory)
        labels=labels,
        class_names=names,
        name=root.name,
        files=kept_files,
        cache_file=store_dir / f"generation-{stored.generation}",
    )
