"""Two public benchmarks of technical batches, as the WILDS package lays them out (Koh et al. 2021).

* **RxRx1-WILDS** (``rxrx1_v1.0``): 125,510 fluorescence images of 256x256 (3 of the 6 channels, as
  8-bit RGB PNG), 4 cell types, 1,139 siRNAs, 51 experiments. ``metadata.csv`` has one row per
  image (site_id, well_id, cell_type, dataset, experiment, plate, well, site, well_type, sirna,
  sirna_id); the image is ``images/<experiment>/Plate<plate>/<well>_s<site>.png``. The experiment
  is the technical batch; the classes default to the cell type (4), ``dataset.label=sirna`` for the
  siRNAs, ``dataset.perturbation=sirna`` for cross-batch positives.
* **Camelyon17-WILDS** (``camelyon17_v1.0``): 455,954 H&E patches of 96x96 from 50 slides of 5
  hospitals. ``metadata.csv`` (its first column the row index) has patient, node, x_coord,
  y_coord, tumor, slide, center, split; the patch is
  ``patches/patient_<patient>_node_<node>/patch_patient_<patient>_node_<node>_x_<x>_y_<y>.png``
  (the patient as written in the table, zero-padded to three digits). The hospital (``center``) is
  the technical batch; the classes are ``tumor`` (the central 32x32 px hold tumour).

Checked against the WILDS loaders (``wilds/datasets/rxrx1_dataset.py``, ``camelyon17_dataset.py``).
"""

from __future__ import annotations

from pathlib import Path

from medviz.data.image_arrays import ImageArrays
from medviz.data.sources.table_of_files import read_table, require_columns, table_dataset

RXRX1_COLUMNS = [
    "site_id",
    "well_id",
    "cell_type",
    "dataset",
    "experiment",
    "plate",
    "well",
    "site",
    "well_type",
    "sirna",
    "sirna_id",
]
CAMELYON17_COLUMNS = ["patient", "node", "x_coord", "y_coord", "tumor", "slide", "center", "split"]


def load_rxrx1(
    path: str,
    size: int = 64,
    label: str | None = "cell_type",
    batch: str | None = "experiment",
    cache_dir: str | None = None,
    workers: int | None = None,
) -> ImageArrays:
    """RxRx1-WILDS from its folder (the one holding ``metadata.csv`` and ``images/``); images resized to ``size``."""
    root = Path(path).expanduser().resolve()
    table = read_table(root / "metadata.csv", "RxRx1-WILDS (rxrx1_v1.0)", dtype={"experiment": str, "well": str})
    require_columns(table, RXRX1_COLUMNS, root / "metadata.csv")
    paths = [
        f"images/{experiment}/Plate{plate}/{well}_s{site}.png"
        for experiment, plate, well, site in table[["experiment", "plate", "well", "site"]].itertuples(index=False)
    ]
    return table_dataset(root, table, paths, "rxrx1", label, batch, size, cache_dir, workers)


def load_camelyon17(
    path: str,
    size: int = 96,
    label: str | None = "tumor",
    batch: str | None = "center",
    cache_dir: str | None = None,
    workers: int | None = None,
) -> ImageArrays:
    """Camelyon17-WILDS from its folder (the one holding ``metadata.csv`` and ``patches/``)."""
    root = Path(path).expanduser().resolve()
    table = read_table(root / "metadata.csv", "Camelyon17-WILDS (camelyon17_v1.0)", index_col=0, dtype={"patient": str})
    require_columns(table, CAMELYON17_COLUMNS, root / "metadata.csv")
    table["patient"] = table["patient"].str.zfill(3)  # a table saved by a spreadsheet loses the zeros
    paths = [
        f"patches/patient_{p}_node_{n}/patch_patient_{p}_node_{n}_x_{x}_y_{y}.png"
        for p, n, x, y in table[["patient", "node", "x_coord", "y_coord"]].itertuples(index=False)
    ]
    return table_dataset(root, table, paths, "camelyon17", label, batch, size, cache_dir, workers)
