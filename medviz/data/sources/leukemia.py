"""AML-Cytomorphology_LMU (Matek et al. 2019; TCIA): single white blood cells, 15 classes.

Layout: ``<root>/AML-Cytomorphology/<CLS>/<CLS>_NNNN.tiff`` (RGBA, ~400x400), optionally with
``annotations.dat``; the class folders are found by name up to three levels below ``root`` (the
archive unpacks as ``AML-Cytomorphology_LMU/AML-Cytomorphology/``). Images are converted to RGB
and resized to 28x28 once into the dataset's store; classes with fewer than 80 images merge into ``OTH``,
giving the paper's 7 classes (paper §4).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medviz.data.image_arrays import ImageArrays
from medviz.data.sources.folder import images_below, ingest_files
from medviz.errors import DataError
from medviz.store.ingest import IngestReport
from medviz.store.read import open_store

log = logging.getLogger("medviz")

MERGED = "OTH"
#: The 15 class folders of the TCIA archive.
TCIA_CLASSES = ("BAS", "EBO", "EOS", "KSC", "LYA", "LYT", "MMZ", "MOB", "MON", "MYB", "MYO", "NGB", "NGS", "PMB", "PMO")


def merge_small_classes(counts: dict[str, int], threshold: int = 80) -> dict[str, str]:
    """Map each class to itself, or to ``OTH`` when it has fewer than ``threshold`` images."""
    return {name: (name if n >= threshold else MERGED) for name, n in counts.items()}


def _folders_below(root: Path, depth: int) -> list[Path]:
    """``root`` and its sub-folders down to ``depth`` levels, shallowest first (hidden ones skipped)."""
    level, found = [root], [root]
    for _ in range(depth):
        level = [d for parent in level for d in sorted(parent.iterdir()) if d.is_dir() and not d.name.startswith(".")]
        found += level
    return found


def find_image_tree(root: Path, depth: int = 3) -> Path:
    """The folder whose sub-folders are the class folders, found by their TCIA class names.

    The archive unpacks as ``AML-Cytomorphology_LMU/AML-Cytomorphology/<CLS>/``; any such level at
    most ``depth`` below ``root`` is found (the shallowest with the most known class folders).
    """
    if not root.is_dir():
        raise DataError(
            f"{root} does not exist: put the TCIA AML-Cytomorphology_LMU download there (its class folders "
            f"{', '.join(TCIA_CLASSES[:3])}, ... may sit a few levels down), or set dataset.root to where it is"
        )
    folders = _folders_below(root, depth)
    counts = [sum((folder / name).is_dir() for name in TCIA_CLASSES) for folder in folders]
    if max(counts) == 0:
        seen = ", ".join(str(d.relative_to(root)) for d in folders[1:8]) or "no sub-folders"
        raise DataError(
            f"no Leukemia class folders ({', '.join(TCIA_CLASSES)}) in {root} or up to {depth} levels below it "
            f"(found: {seen}). Set dataset.root to the folder that holds AML-Cytomorphology/<CLASS>/*.tiff"
        )
    return folders[counts.index(max(counts))]  # the shallowest of the most complete


def class_images(tree: Path) -> list[Path]:
    """Every image below each class folder of ``tree`` (at any depth), sorted; says so when some are nested."""
    files = sorted(f for d in tree.iterdir() if d.is_dir() and not d.name.startswith(".") for f in images_below(d))
    nested = [f for f in files if len(f.relative_to(tree).parts) > 2]
    if nested:
        log.info(
            f"{tree}: {len(nested)} images lie in sub-folders of their class folder (e.g. {nested[0]}); "
            "each takes its class folder's label"
        )
    unknown = sorted({f.relative_to(tree).parts[0] for f in files} - set(TCIA_CLASSES))
    if unknown:
        log.warning(f"{tree}: folders not among the TCIA classes are read as classes too: {', '.join(unknown)}")
    return files


def ingest_leukemia(
    root: str, size: int = 28, cache_dir: str | None = None, workers: int | None = None
) -> tuple[Path, IngestReport]:
    """Build or update the store of the Leukemia images (``medviz ingest dataset=leukemia``)."""
    tree = find_image_tree(Path(root).expanduser())
    files = class_images(tree)
    if not files:
        raise DataError(f"{tree} has class folders but no .tiff/.png/.jpg images in or below them")
    return ingest_files(tree, files, size, cache_dir, workers=workers, kind="leukemia")


def load_leukemia(
    root: str, size: int = 28, threshold: int = 80, cache_dir: str | None = None, workers: int | None = None
) -> ImageArrays:
    """Load the Leukemia dataset through its store (decoded and resized once; only changed files again).

    Args:
        root: folder containing ``AML-Cytomorphology/``.
        size: image side after resizing (paper: 28).
        threshold: classes with fewer images merge into ``OTH`` (paper: 80 -> 7 classes).
        cache_dir: where the store goes (default ``$MEDVIZ_CACHE`` or ~/.cache/medviz).
        workers: processes that decode new images (default: every core).
    """
    store_dir, _ = ingest_leukemia(root, size, cache_dir, workers)
    stored = open_store(store_dir)
    if not stored.keys:
        raise DataError(f"none of the {len(stored.unreadable)} Leukemia images could be read")
    folder_class = np.array([Path(key).parts[0] for key in stored.keys])
    names, counts = np.unique(folder_class, return_counts=True)
    mapping = merge_small_classes(dict(zip(names.tolist(), counts.tolist(), strict=True)), threshold)
    merged = np.array([mapping[c] for c in folder_class])
    # Largest class first, OTH last, as in the paper's legend.
    kept_names = sorted({m for m in mapping.values() if m != MERGED}, key=lambda n: -(merged == n).sum())
    class_names = tuple(kept_names + ([MERGED] if MERGED in mapping.values() else []))
    labels = np.array([class_names.index(m) for m in merged], dtype=np.int64)
    return ImageArrays(
        images=stored.images,
        labels=labels,
        class_names=class_names,
        name="leukemia",
        cache_file=store_dir / f"generation-{stored.generation}",
    )
