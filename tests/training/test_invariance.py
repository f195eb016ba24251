"""invariance=batch end to end: training on planted batches, the run's own statistics, new plates embedded."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from medviz.maps.embed import embed_dataset_into_run
from medviz.training.pipeline import train
from tests.helpers.config import TINY, compose_config

CELLS = [
    *TINY,
    "dataset=synthcells",
    "dataset.n_images=96",
    "dataset.batches=2",
    "dataset.batch_strength=1.0",
    "aug=fluorescence",
    "schedule=stages",
    "schedule.epochs=[1,1,1]",
    "schedule.warmup_epochs=[0,0,0]",
    "eval.snapshot_every=1",
]


@pytest.fixture(scope="module")
def invariant_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "batch"
    cfg = compose_config([*CELLS, "invariance=batch", "aug.transform.technical.kind=auto"], run_dir=run_dir)
    metrics = train(cfg)
    return run_dir, cfg, metrics


def test_invariance_batch_composes_its_switches():
    cfg = compose_config([*CELLS, "invariance=batch"])
    assert cfg.invariance.name == "batch" and cfg.invariance.homogeneous_batches is True
    assert cfg.dataset.normalise == "batch" and cfg.aug.transform.technical.kind == "none"
    plain = compose_config(CELLS)
    assert plain.invariance.name == "none" and plain.aug.transform.technical.kind == "none"


def test_a_run_trains_with_every_switch_on_and_measures_its_batches(invariant_run):
    run_dir, _, metrics = invariant_run
    assert metrics["intensity"]["mode"] == "batch"
    assert set(metrics["intensity"]["batches"]) == {"batch1", "batch2"}
    assert "batch_ilisi" in metrics and "batch_knn_accuracy" in metrics
    embedding = np.load(run_dir / "embedding.npz")["embedding"]
    assert embedding.shape == (96, 2) and np.isfinite(embedding).all()
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["intensity"]["batches"]["batch1"]["high"] != saved["intensity"]["batches"]["batch2"]["high"]


def test_new_plates_get_their_own_ranges_and_statistics_when_embedded(invariant_run, tmp_path, caplog):
    run_dir, _, _ = invariant_run
    with caplog.at_level(logging.INFO, logger="medviz"):
        out = embed_dataset_into_run(run_dir, ["dataset.batches=3", "dataset.n_images=60"], tmp_path / "out")
    assert "1 technical batches new to the run (batch3)" in caplog.text
    assert "BatchNorm statistics of each of the 3 technical batches" in caplog.text
    points = np.genfromtxt(out / "embedded_points.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert len(points) == 60 and set(points["batch"]) == {"batch1", "batch2", "batch3"}
    assert np.isfinite(points["x"]).all()


@pytest.mark.slow
def test_the_screen_case_invariance_batch_takes_the_plates_out_and_keeps_the_treatments(tmp_path, monkeypatch):
    """The case every change must keep passing (docs/invariance.md): about 5 min on 2 CPU cores."""
    from medviz.evaluation.screen_case import screen_case

    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
    for arm in ("none", "batch"):
        cfg = compose_config(
            ["experiment=quickstart_plates", f"invariance={arm}", "trainer.enable_progress_bar=false"],
            run_dir=tmp_path / arm,
        )
        train(cfg)
    result = screen_case(tmp_path / "none", tmp_path / "batch")
    assert result["none"]["plate_knn"] > 0.9  # without it the plates are apart
    assert result["plate_met"], result
    assert result["treatment_met"], result
