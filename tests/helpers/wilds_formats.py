"""RxRx1-WILDS, Camelyon17-WILDS and PCam's meta tables in their exact layouts (columns, names, folders).

Images are smaller than the real ones (RxRx1: 256 px, Camelyon17: 96 px) so tests stay fast; the
files, their names and the tables are as the WILDS package and PCam's authors ship them. Each
image's pixel (0, 0) encodes its row of the table, so tests can check every image against its row.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def _png(path: Path, row: int, size: int, seed: int) -> None:
    rng = np.random.default_rng([seed, row])
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    image[0, 0] = (row % 256, row // 256, 7)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def row_of(image: np.ndarray) -> int:
    """The table row an image (H, W, 3) was written for (from pixel (0, 0))."""
    return int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])


def write_rxrx1(root: Path, experiments=("HEPG2-01", "HUVEC-02"), plates=(1, 2), size: int = 32) -> list[dict]:
    """``<root>/metadata.csv`` (WILDS's columns, no index column) and
    ``images/<experiment>/Plate<p>/<well>_s<site>.png``; 2 wells x 2 sites per plate. Returns the table's rows."""
    rows = []
    for experiment in experiments:
        for plate in plates:
            for w, well in enumerate(("B02", "C03")):
                for site in (1, 2):
                    control = w == 1
                    rows.append(
                        {
                            "site_id": f"{experiment}_{plate}_{well}_{site}",
                            "well_id": f"{experiment}_{plate}_{well}",
                            "cell_type": experiment.split("-")[0],
                            "dataset": "train" if plate == 1 else "test",
                            "experiment": experiment,
                            "plate": plate,
                            "well": well,
                            "site": site,
                            "well_type": "negative_control" if control else "treatment",
                            "sirna": "EMPTY" if control else "s21721",
                            "sirna_id": 1138 if control else 17,
                        }
                    )
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for i, row in enumerate(rows):
        _png(
            root / "images" / row["experiment"] / f"Plate{row['plate']}" / f"{row['well']}_s{row['site']}.png",
            i,
            size,
            1,
        )
    return rows


def write_camelyon17(root: Path, per_slide: int = 3, size: int = 24) -> list[dict]:
    """``<root>/metadata.csv`` (an unnamed index column first, then WILDS's columns) and
    ``patches/patient_<ppp>_node_<n>/patch_patient_<ppp>_node_<n>_x_<x>_y_<y>.png``: 3 centres, 2
    slides each. Returns the table's rows."""
    rows = []
    for center in range(3):
        for s in range(2):
            patient, node = 4 + 10 * center + s, s
            for k in range(per_slide):
                rows.append(
                    {
                        "patient": f"{patient:03d}",
                        "node": node,
                        "x_coord": 3200 + 96 * k,
                        "y_coord": 12000 + 32 * k,
                        "tumor": k % 2,
                        "slide": 2 * center + s,
                        "center": center,
                        "split": 0,
                    }
                )
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "metadata.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["", *rows[0]])
        for i, row in enumerate(rows):
            writer.writerow([i, *row.values()])
    for i, row in enumerate(rows):
        p, n = row["patient"], row["node"]
        name = f"patch_patient_{p}_node_{n}_x_{row['x_coord']}_y_{row['y_coord']}.png"
        _png(root / "patches" / f"patient_{p}_node_{n}" / name, i, size, 2)
    return rows


def write_pcam_meta(root: Path, sizes=(("train", 6), ("valid", 3), ("test", 3))) -> None:
    """``camelyonpatch_level_2_split_<split>_meta.csv`` beside PCam's .h5 files: an unnamed index column,
    coord_y, coord_x, tumor_patch, center_tumor_patch, wsi (Camelyon16 slide names; test slides have
    no centre)."""
    slides = {
        "train": ["camelyon16_train_normal_001", "camelyon16_train_normal_120", "camelyon16_train_tumor_070"],
        "valid": ["camelyon16_train_tumor_071", "camelyon16_train_normal_100"],
        "test": ["camelyon16_test_001"],
    }
    for split, n in sizes:
        with open(root / f"camelyonpatch_level_2_split_{split}_meta.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["", "coord_y", "coord_x", "tumor_patch", "center_tumor_patch", "wsi"])
            for i in range(n):
                wsi = slides[split][i % len(slides[split])]
                writer.writerow([i, 1000 + i, 2000 + i, i % 2 == 1, i % 2 == 1, wsi])
