"""The screen case every change must keep passing (docs/invariance.md).

A 3-plate, 4-treatment screen read through its CellProfiler tables (``experiment=quickstart_plates``:
crops of 48 px trained at 32 px, the CPU fluorescence quickstart at 60/20/40 epochs, one seed).
With ``invariance=batch`` the plate must be hard to tell from the map -- plate kNN (k = 15, 5-fold)
within 0.10 of chance -- while the treatments stay as well told apart as with ``invariance=none``
(treatment kNN within 0.03).

    python -m medviz.evaluation.screen_case <run with invariance=none> <run with invariance=batch>

And the new-batch case: a plate left out of training (``dataset.plate=[Plate1,Plate2]``) and placed
into the finished map with ``medviz embed --run <run> dataset.plate=Plate3``: its treatments
predicted from the map's points (kNN, k = 15), against the map's own treatment kNN (5-fold).

    python -m medviz.evaluation.screen_case --new-plate <run> <its embedded folder>
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.neighbors import KNeighborsClassifier

from medviz.evaluation.knn import knn_cv_accuracy
from medviz.maps.plots import plot_panel_rows
from medviz.runs.files import METADATA_FILE

PLATE_WITHIN = 0.10
TREATMENT_WITHIN = 0.03


def screen_scores(run_dir: Path, plate: str = "Metadata_Plate", treatment: str = "Metadata_Treatment") -> dict:
    """Plate and treatment kNN (k = 15, 5-fold) of a run's map, and the plates' chance level."""
    with np.load(run_dir / "embedding.npz") as saved:
        coords = saved["embedding"]
    metadata = pd.read_parquet(run_dir / METADATA_FILE)
    plates = pd.factorize(metadata[plate].astype(str))[0]
    treatments = pd.factorize(metadata[treatment].astype(str))[0]
    return {
        "plate_knn": knn_cv_accuracy(coords, plates),
        "plate_chance": float(np.bincount(plates).max() / len(plates)),
        "treatment_knn": knn_cv_accuracy(coords, treatments),
    }


def screen_case(none_run: Path, batch_run: Path) -> dict:
    """Both runs' scores and whether ``batch_run`` meets the case's two conditions against ``none_run``."""
    none, batch = screen_scores(none_run), screen_scores(batch_run)
    return {
        "none": none,
        "batch": batch,
        "plate_met": batch["plate_knn"] - batch["plate_chance"] <= PLATE_WITHIN,
        "treatment_met": batch["treatment_knn"] >= none["treatment_knn"] - TREATMENT_WITHIN,
    }


def screen_figure(none_run: Path, batch_run: Path, path: Path) -> Path:
    """The two maps side by side, coloured by plate (top row) and by treatment (bottom row): the
    picture of docs/invariance.md and the README."""
    rows = []
    runs = (("invariance=none", none_run), ("invariance=batch", batch_run))
    maps = {}
    for title, run in runs:
        with np.load(run / "embedding.npz") as saved:
            maps[title] = saved["embedding"]
    metadata = pd.read_parquet(none_run / METADATA_FILE)
    for column, label in (("Metadata_Plate", "by plate"), ("Metadata_Treatment", "by treatment")):
        codes, names = pd.factorize(metadata[column].astype(str), sort=True)
        panels = [(title, maps[title], {}) for title, _ in runs]
        rows.append((label, codes.astype(np.int64), [str(n) for n in names], panels))
    return plot_panel_rows(rows, path)


def new_plate_case(run_dir: Path, embedded_dir: Path, treatment: str = "Metadata_Treatment") -> dict:
    """How well a new plate's cells land among the map's: their treatment predicted from the map's
    points (kNN, k = 15) against the map's own treatment kNN (5-fold)."""
    with np.load(run_dir / "embedding.npz") as saved:
        coords = saved["embedding"]
    known = pd.read_parquet(run_dir / METADATA_FILE)[treatment].astype(str).to_numpy()
    new = pd.read_csv(embedded_dir / "embedded_points.csv")
    names, codes = np.unique(known, return_inverse=True)
    model = KNeighborsClassifier(n_neighbors=15).fit(coords, codes)
    predicted = names[model.predict(new[["x", "y"]].to_numpy())]
    map_knn = knn_cv_accuracy(coords, codes)
    new_knn = float(np.mean(predicted == new[treatment].astype(str).to_numpy()))
    return {"map_treatment_knn": map_knn, "new_plate_treatment_knn": new_knn, "new_plate_images": len(new)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="the run with invariance=none (with --new-plate: the run)")
    parser.add_argument(
        "second", type=Path, help="the run with invariance=batch (with --new-plate: its embedded folder)"
    )
    parser.add_argument("--new-plate", action="store_true", help="the new-batch case instead")
    parser.add_argument("--figure", type=Path, help="also draw both maps by plate and by treatment here (PNG)")
    args = parser.parse_args(argv)
    if args.figure is not None and not args.new_plate:
        print(f"figure: {screen_figure(args.first, args.second, args.figure)}")
    result = new_plate_case(args.first, args.second) if args.new_plate else screen_case(args.first, args.second)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
