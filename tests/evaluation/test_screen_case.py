"""The screen case's scores: plate and treatment kNN (k = 15, 5-fold) from a run's map and table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medviz.evaluation.knn import knn_cv_accuracy
from medviz.evaluation.screen_case import screen_case


def _run(folder, coords, plates, treatments):
    folder.mkdir()
    np.savez(folder / "embedding.npz", embedding=coords.astype(np.float32))
    pd.DataFrame({"Metadata_Plate": plates, "Metadata_Treatment": treatments}).to_parquet(folder / "metadata.parquet")


def test_cross_validated_knn_predicts_every_point_once():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    apart = rng.normal(size=(100, 2)) + labels[:, None] * 10
    assert knn_cv_accuracy(apart, labels) == 1.0
    assert knn_cv_accuracy(rng.normal(size=(100, 2)), labels) == pytest.approx(0.5, abs=0.15)


def test_the_case_is_met_when_plates_mix_and_treatments_stay_apart(tmp_path):
    rng = np.random.default_rng(1)
    plates = np.tile(["P1", "P2", "P3"], 100)
    treatments = np.repeat(["DMSO", "cpd_A", "cpd_B", "cpd_C"], 75)
    centres = {t: rng.normal(size=2) * 8 for t in set(treatments)}
    by_treatment = np.array([centres[t] for t in treatments]) + rng.normal(size=(300, 2))
    by_plate = by_treatment + np.array([{"P1": 0, "P2": 40, "P3": 80}[p] for p in plates])[:, None]
    _run(tmp_path / "none", by_plate, plates, treatments)
    _run(tmp_path / "batch", by_treatment, plates, treatments)
    result = screen_case(tmp_path / "none", tmp_path / "batch")
    assert result["none"]["plate_knn"] == 1.0 and result["batch"]["plate_chance"] == pytest.approx(1 / 3)
    assert result["plate_met"] and result["treatment_met"]
    failing = screen_case(tmp_path / "batch", tmp_path / "none")  # the plates kept apart: not met
    assert not failing["plate_met"]


def test_a_new_plate_is_scored_by_the_maps_neighbours(tmp_path):
    from medviz.evaluation.screen_case import new_plate_case

    rng = np.random.default_rng(2)
    treatments = np.repeat(["DMSO", "cpd_A"], 60)
    coords = np.where(treatments[:, None] == "DMSO", 0.0, 10.0) + rng.normal(size=(120, 2))
    _run(tmp_path / "run", coords, np.tile(["P1", "P2"], 60), treatments)
    (tmp_path / "embedded").mkdir()
    new = pd.DataFrame({"x": [0.1, 9.8, 0.3, 10.2], "y": [0.0, 10.1, -0.2, 9.7]})
    new["Metadata_Treatment"] = ["DMSO", "cpd_A", "cpd_A", "cpd_A"]  # the third lands among DMSO
    new.to_csv(tmp_path / "embedded" / "embedded_points.csv", index=False)
    result = new_plate_case(tmp_path / "run", tmp_path / "embedded")
    assert result["map_treatment_knn"] == 1.0 and result["new_plate_treatment_knn"] == 0.75
    assert result["new_plate_images"] == 4


def test_the_figure_draws_both_maps_by_plate_and_by_treatment(tmp_path):
    from PIL import Image

    from medviz.evaluation.screen_case import screen_figure

    rng = np.random.default_rng(4)
    plates, treatments = np.tile(["P1", "P2"], 30), np.repeat(["DMSO", "cpd_A", "cpd_B"], 20)
    for name in ("none", "batch"):
        _run(tmp_path / name, rng.normal(size=(60, 2)), plates, treatments)
    path = screen_figure(tmp_path / "none", tmp_path / "batch", tmp_path / "pair.png")
    width, height = Image.open(path).size
    assert width > height > 0  # two columns (none, batch) of two rows (by plate, by treatment)
