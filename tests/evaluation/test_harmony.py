"""The Harmony + t-SNE baseline: corrected features lose their batch, keep their classes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from medviz.errors import DataError
from medviz.evaluation.harmony import (
    harmony_baseline,
    harmony_corrected,
    principal_components,
    relative_change,
)
from medviz.training.pipeline import train
from tests.helpers.config import TINY, compose_config


def _knn(points: np.ndarray, labels: np.ndarray) -> float:
    return float(cross_val_score(KNeighborsClassifier(15), points, labels, cv=5).mean())


def test_principal_components_keep_the_largest_variance_first():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 3)) * [5.0, 1.0, 0.1] @ np.linalg.qr(rng.normal(size=(3, 3)))[0]
    components = principal_components(features, components=2)
    assert components.shape == (200, 2)
    variances = components.var(axis=0)
    assert variances[0] > 10 * variances[1] and variances[0] == pytest.approx(25, rel=0.2)


def test_harmony_removes_a_batch_shift_and_keeps_the_classes():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 200)
    batches = np.tile([0, 1], 300)
    centres = rng.normal(size=(3, 20)) * 4
    features = centres[labels] + rng.normal(size=(600, 20))
    features[batches == 1] += rng.normal(size=20)  # a plate effect: every feature shifted
    assert _knn(features, batches) > 0.95
    corrected = harmony_corrected(features, batches, seed=0)
    assert corrected.shape == (600, 20)
    assert _knn(corrected, batches) < 0.65  # chance 0.5
    assert _knn(corrected, labels) > 0.95


def test_batches_in_clusters_of_their_own_are_left_as_they_were_and_said(caplog):
    # Each technical batch a tight cluster far from the others: Harmony has no shared cluster in
    # which to align them, so it moves nothing -- and the user is told why.
    rng = np.random.default_rng(2)
    batches = np.repeat([0, 1, 2], 150)
    features = rng.normal(size=(3, 20))[batches] * 50 + rng.normal(size=(450, 20))
    with caplog.at_level("WARNING", logger="medviz"):
        corrected = harmony_corrected(features, batches, seed=0)
    assert relative_change(principal_components(features), corrected) < 1e-3
    assert "one technical batch only" in caplog.text and "invariance=batch" in caplog.text


def test_a_correction_that_moves_the_points_says_nothing(caplog):
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 200)
    batches = np.tile([0, 1], 300)
    features = rng.normal(size=(3, 20))[labels] * 4 + rng.normal(size=(600, 20))
    features[batches == 1] += rng.normal(size=20)
    with caplog.at_level("WARNING", logger="medviz"):
        corrected = harmony_corrected(features, batches, seed=0)
    assert relative_change(principal_components(features), corrected) > 0.01
    assert "Harmony left" not in caplog.text


@pytest.fixture(scope="module")
def run_with_batches(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "cells"
    overrides = [
        *TINY,
        "dataset=synthcells",
        "dataset.batches=2",
        "aug=fluorescence",
        "schedule.epochs=[1,1,1]",
        "schedule.warmup_epochs=[0,0,0]",
    ]
    train(compose_config(overrides, run_dir=run_dir))
    return run_dir


def test_the_baseline_maps_a_runs_corrected_features_and_measures_them(run_with_batches, tmp_path):
    folder = harmony_baseline(run_with_batches, tmp_path, k=15, seed=0, max_points=100_000)
    assert folder == tmp_path / f"harmony-{run_with_batches.name}"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["n_images"] == 96
    for key in ("knn_accuracy", "batch_ilisi", "batch_knn_accuracy", "features_batch_ilisi"):
        assert key in metrics
    assert metrics["harmony_relative_change"] >= 0
    saved = np.load(folder / "embedding.npz")
    assert saved["embedding"].shape == (96, 2) and np.array_equal(saved["index"], np.arange(96))
    assert (folder / "map.png").is_file()


def test_a_run_without_technical_batches_is_refused(tmp_path):
    run_dir = tmp_path / "plain"
    train(compose_config([*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]"], run_dir=run_dir))
    with pytest.raises(DataError, match="dataset.batch=<column>"):
        harmony_baseline(run_dir, tmp_path / "out", k=15, seed=0, max_points=1000)
