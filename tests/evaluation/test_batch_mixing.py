"""The scIB batch-mixing metrics: known answers, the formulas as naive loops, and the cases that matter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chi2
from sklearn.metrics import silhouette_samples

from medviz.evaluation.batch_mixing import (
    Neighbours,
    batch_asw,
    batch_mixing_metrics,
    clisi,
    graph_connectivity,
    ilisi,
    kbet_acceptance,
    lisi,
    nearest_neighbours,
)
from medviz.evaluation.knn import knn_accuracy
from medviz.evaluation.silhouette import silhouette_score


def clusters(n_per: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated 2-D clusters (labels 0, 1, 2)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1, 2], n_per)
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    return centres[labels] + rng.normal(0, 1, (len(labels), 2)), labels


def naive_lisi(points: np.ndarray, groups: np.ndarray, k: int, perplexity: float) -> np.ndarray:
    """LISI point by point, as the formula reads: k neighbours, beta by bisection to entropy log(perplexity)."""
    out = []
    for i in range(len(points)):
        d = np.sqrt(((points - points[i]) ** 2).sum(axis=1))
        d[i] = np.inf
        order = np.argsort(d, kind="stable")[:k]
        dist = d[order]
        beta, low, high = 1.0, -np.inf, np.inf
        for _ in range(50):
            p = np.exp(-dist * beta)
            total = p.sum()
            h = np.log(total) + beta * (dist * p).sum() / total
            if abs(h - np.log(perplexity)) < 1e-5:
                break
            if h > np.log(perplexity):
                low = beta
                beta = beta * 2 if high == np.inf else (beta + high) / 2
            else:
                high = beta
                beta = beta / 2 if low == -np.inf else (beta + low) / 2
        p = np.exp(-dist * beta)
        p /= p.sum()
        simpson = sum(p[groups[order] == g].sum() ** 2 for g in np.unique(groups))
        out.append(1 / simpson)
    return np.array(out)


def test_lisi_matches_the_formula_point_by_point():
    points, labels = clusters(60)
    rng = np.random.default_rng(1)
    batches = rng.integers(0, 3, len(points))
    fast = lisi(nearest_neighbours(points, 30), batches, perplexity=10)
    assert fast == pytest.approx(naive_lisi(points, batches, 30, 10), rel=1e-4)


def test_perfect_mixing_and_one_batch_per_cluster():
    points, labels = clusters()
    rng = np.random.default_rng(0)
    mixed = rng.permutation(np.arange(len(points)) % 2)
    mixed_metrics = batch_mixing_metrics(points, mixed, labels)
    assert mixed_metrics["batch_ilisi"] > 0.9
    assert mixed_metrics["batch_kbet"] > 0.85
    assert mixed_metrics["batch_asw"] > 0.9
    assert abs(mixed_metrics["batch_knn_accuracy"] - mixed_metrics["batch_knn_chance"]) < 0.1
    assert mixed_metrics["graph_connectivity"] > 0.98  # nearly every point reachable within its class
    # one batch per cluster: the batch is the biology (label-confounded) -- no neighbourhood mixes
    confounded = (labels == 0).astype(int)
    metrics = batch_mixing_metrics(points, confounded, labels)
    assert metrics["batch_ilisi"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["batch_knn_accuracy"] == 1.0
    assert np.isnan(metrics["batch_kbet"]) and np.isnan(metrics["batch_asw"])  # no label holds two batches


def test_batches_that_split_every_cluster_score_low_and_the_total_weighs_both_sides():
    points, labels = clusters()
    batches = np.tile([0, 1], len(points) // 2)
    split = points + np.where(batches[:, None] == 1, 6.0, 0.0)  # each cluster in two halves, one per batch
    metrics = batch_mixing_metrics(split, batches, labels)
    assert metrics["batch_ilisi"] < 0.05 and metrics["batch_kbet"] < 0.05
    assert metrics["batch_asw"] < 0.5  # the batches' silhouette within each label is high
    assert metrics["graph_connectivity"] < 0.75  # each label falls apart into its two halves
    assert metrics["clisi"] == pytest.approx(1.0, abs=1e-3)
    batch_mean = np.mean([metrics[k] for k in ("batch_ilisi", "batch_kbet", "batch_asw", "graph_connectivity")])
    biology = np.mean(
        [knn_accuracy(split, labels, k=15, seed=0), (silhouette_score(split, labels) + 1) / 2, metrics["clisi"]]
    )
    assert biology > 0.9  # the classes are intact
    assert metrics["scib_total"] == pytest.approx(0.4 * batch_mean + 0.6 * biology, abs=1e-3)


def test_kbet_matches_the_chi_squared_test_written_out():
    rng = np.random.default_rng(2)
    batches = rng.integers(0, 3, 300)
    indices = rng.integers(0, 300, (300, 20))
    shares = np.bincount(batches) / len(batches)
    accepted = 0
    for row in indices:
        observed = np.bincount(batches[row], minlength=3)
        statistic = (((observed - 20 * shares) ** 2) / (20 * shares)).sum()
        accepted += chi2.sf(statistic, 2) >= 0.05
    assert kbet_acceptance(indices, batches) == pytest.approx(accepted / 300)


def test_batch_asw_and_graph_connectivity_as_written():
    points, labels = clusters(50)
    rng = np.random.default_rng(3)
    batches = rng.integers(0, 2, len(points))
    per_label = [(1 - np.abs(silhouette_samples(points[labels == c], batches[labels == c]))).mean() for c in range(3)]
    assert batch_asw(points, batches, labels) == pytest.approx(np.mean(per_label))
    # a graph where label 0's points 0-4 link only among themselves and 5-9 likewise: largest part 5 of 10
    indices = np.array([[(i + 1) % 5 + 5 * (i // 5)] for i in range(10)] + [[10 + (i + 1) % 10] for i in range(10)])
    graph = Neighbours(indices, np.ones_like(indices, dtype=float))
    assert graph_connectivity(graph, np.repeat([0, 1], 10)) == pytest.approx((0.5 + 1.0) / 2)


def test_ilisi_is_scaled_to_the_number_of_batches():
    points, _ = clusters(100)
    rng = np.random.default_rng(4)
    for n_batches in (2, 4):
        batches = rng.integers(0, n_batches, len(points))
        raw = np.median(lisi(nearest_neighbours(points, 90), batches))
        assert ilisi(nearest_neighbours(points, 90), batches) == pytest.approx((raw - 1) / (n_batches - 1))


def test_large_maps_are_measured_on_a_stratified_subsample():
    points, labels = clusters(400)
    batches = np.random.default_rng(5).integers(0, 2, len(points))
    metrics = batch_mixing_metrics(points, batches, labels, max_points=500)
    assert metrics["batch_metrics_points"] == 500
    assert metrics["batch_ilisi"] > 0.85


def test_one_batch_gives_no_metrics():
    points, labels = clusters(20)
    assert batch_mixing_metrics(points, np.zeros(len(points), int), labels) == {}


REFERENCE = Path(__file__).with_name("scib_reference.json")


@pytest.mark.parametrize("name", ["mixed", "split", "confounded"])
def test_the_metrics_match_scib_metrics_reference_values(name):
    """Values computed once with scib-metrics itself (benchmarks/scib_reference.py) on the same maps."""
    reference = json.loads(REFERENCE.read_text())
    case = reference["maps"][name]
    points, batches, labels = (np.array(case[key]) for key in ("points", "batches", "labels"))
    neighbours = nearest_neighbours(points, 90)
    assert ilisi(neighbours, batches) == pytest.approx(case["batch_ilisi"], abs=1e-4)
    assert clisi(neighbours, labels) == pytest.approx(case["clisi"], abs=1e-4)
    assert graph_connectivity(neighbours.first(15), labels) == pytest.approx(case["graph_connectivity"], abs=1e-6)
    expected_asw = case["batch_asw"]
    ours = batch_asw(points, batches, labels)
    assert (np.isnan(ours) and np.isnan(expected_asw)) or ours == pytest.approx(expected_asw, abs=1e-4)
