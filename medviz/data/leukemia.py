"""AML-Cytomorphology_LMU (Matek et al. 2019; TCIA): single white blood cells, 15 classes.

Layout: ``<root>/AML-Cytomorphology/<CLS>/<CLS>_NNNN.tiff`` (RGBA, ~400x400), optionally with
``annotations.dat``. Images are converted to RGB and resized to 28x28 once, then cached; classes
with fewer than 80 images merge into ``OTH``, giving the paper's 7 classes (paper §4).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medviz.data.arrays import ImageArrays, border_colour
from medviz.data.cache import cache_key, default_cache_dir, load_npz, save_npz_atomic
from medviz.data.errors import DataError
from medviz.data.images_io import IMAGE_SUFFIXES, read_many

log = logging.getLogger("medviz")

MERGED = "OTH"


def merge_small_classes(counts: dict[str, int], threshold: int = 80) -> dict[str, str]:
    """Map each class to itself, or to ``OTH`` when it has fewer than ``threshold`` images."""
    return {name: (name if n >= threshold else MERGED) for name, n in counts.items()}


def find_image_tree(root: Path) -> Path:
    """The folder with one sub-folder per class: ``root/AML-Cytomorphology`` or root itself."""
    for candidate in (root / "AML-Cytomorphology", root):
        if candidate.is_dir() and any(p.is_dir() for p in candidate.iterdir()):
            return candidate
    raise DataError(
        f"no Leukemia images under {root}: expected {root / 'AML-Cytomorphology'}/<CLASS>/*.tiff "
        "(the TCIA AML-Cytomorphology_LMU download). Set dataset.source.root to the folder that holds it."
    )


def load_leukemia(root: str, size: int = 28, threshold: int = 80, cache_dir: str | None = None) -> ImageArrays:
    """Load (and on first use, decode, resize and cache) the Leukemia dataset.

    Args:
        root: folder containing ``AML-Cytomorphology/``.
        size: image side after resizing (paper: 28).
        threshold: classes with fewer images merge into ``OTH`` (paper: 80 -> 7 classes).
        cache_dir: where the resized arrays go (default ``$MEDVIZ_CACHE`` or ~/.cache/medviz).
    """
    tree = find_image_tree(Path(root).expanduser())
    files = sorted(p for p in tree.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{tree} has class folders but no .tiff/.png/.jpg images in them")
    key = cache_key(
        files=[str(p.relative_to(tree)) for p in files],
        size=size,
        mtime=max(p.stat().st_mtime for p in files),
    )
    cache = Path(cache_dir or default_cache_dir()) / f"leukemia-{size}px-{key}.npz"
    cached = load_npz(cache, ("images", "folder_class", "border"))
    if cached is None:
        images, kept = read_many(files, size, "Leukemia")
        if not kept:
            raise DataError(f"none of the {len(files)} images under {tree} could be read")
        folder_class = np.array([p.parent.name for p in kept])
        border = border_colour(images)
        save_npz_atomic(cache, images=images, folder_class=folder_class, border=border_colour(images))
        log.info(f"cached resized Leukemia images at {cache}")
    else:
        images, folder_class, border = cached["images"], cached["folder_class"], cached["border"]
    names, counts = np.unique(folder_class, return_counts=True)
    mapping = merge_small_classes(dict(zip(names.tolist(), counts.tolist(), strict=True)), threshold)
    merged = np.array([mapping[c] for c in folder_class])
    # Largest class first, OTH last, as in the paper's legend.
    kept_names = sorted({m for m in mapping.values() if m != MERGED}, key=lambda n: -(merged == n).sum())
    class_names = tuple(kept_names + ([MERGED] if MERGED in mapping.values() else []))
    labels = np.array([class_names.index(m) for m in merged], dtype=np.int64)
    return ImageArrays(images=images, labels=labels, class_names=class_names, name="leukemia", border_rgb=border)
