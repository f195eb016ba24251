"""Is a map organised by biology or by the technical batch (plate, slide, hospital) its images came from?

The scIB metrics (Luecken et al. 2022, "Benchmarking atlas-level data integration in single-cell
genomics"; the definitions of scib and scib-metrics), on the 2-D map or on any features (N, D):

* ``batch_knn_accuracy`` -- kNN (k = 15) predicting the batch from the map, stratified 9:1 split;
  ``batch_knn_chance`` is the largest batch's share. Near chance: batches are mixed.
* ``batch_ilisi`` -- iLISI: the effective number of batches among each point's 90 neighbours
  (weights calibrated to perplexity 30, as t-SNE does), median over points, scaled
  (iLISI - 1) / (B - 1): 1 = perfectly mixed, 0 = every neighbourhood one batch.
* ``batch_kbet`` -- kBET acceptance rate: the share of points whose neighbours' batch counts pass a
  chi-squared test (alpha 0.05) against the batches' shares; per label, k0 = a quarter of the
  label's mean batch size clamped to [10, 70], averaged over labels.
* ``batch_asw`` -- 1 - |silhouette of the batch| within each label, averaged per label, then over labels.
* ``graph_connectivity`` -- per label, the share of its points in the largest connected part of
  the label's own kNN graph (k = 15), averaged over labels.
* Biology: ``clisi`` ((C - cLISI) / (C - 1), 1 = pure neighbourhoods), label kNN accuracy
  (``class_knn_accuracy``) and label silhouette (``class_silhouette``, scaled to [0, 1] in the
  total); ``scib_total`` = 0.4 x mean(batch metrics) + 0.6 x mean(biology).

Two deliberate differences from scib-metrics, both for maps of a million points on two cores:
neighbours are exact (a KD-tree on the map, brute force on features) on a seeded, label- and
batch-stratified subsample of at most ``max_points`` points (its size is reported), and kBET's
neighbours are plain kNN within each label where scib-metrics takes diffusion distances.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.stats import chi2
from sklearn.metrics import silhouette_samples
from sklearn.neighbors import NearestNeighbors

from medviz.data.prepare.subset import stratified_rows
from medviz.evaluation.knn import knn_accuracy
from medviz.evaluation.silhouette import silhouette_score

log = logging.getLogger("medviz")

#: scIB's neighbourhood sizes: LISI 90 (perplexity 90 / 3), graph connectivity and kNN 15.
LISI_K = 90
LISI_PERPLEXITY = 30.0
GRAPH_K = 15
KBET_ALPHA = 0.05
#: Batch metrics run on at most this many points (seeded, stratified by label and batch).
MAX_POINTS = 100_000


@dataclass(frozen=True)
class Neighbours:
    """Each point's ``k`` nearest other points, nearest first: ``indices`` (N, k), ``distances`` (N, k)."""

    indices: np.ndarray
    distances: np.ndarray

    def first(self, k: int) -> Neighbours:
        return Neighbours(self.indices[:, :k], self.distances[:, :k])


def nearest_neighbours(points: np.ndarray, k: int) -> Neighbours:
    """Exact Euclidean neighbours of every point of ``points`` (N, D), itself left out; k < N."""
    points = np.ascontiguousarray(points, dtype=np.float64 if points.shape[1] <= 3 else np.float32)
    k = min(k, len(points) - 1)
    distances, indices = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    # Usually the point itself comes first; with duplicates another copy may, so drop the own row wherever it is.
    own = indices == np.arange(len(points))[:, None]
    own[~own.any(axis=1), -1] = True  # a point not found among its own neighbours (ties): drop the farthest
    keep = ~own
    return Neighbours(indices[keep].reshape(len(points), k), distances[keep].reshape(len(points), k).astype(np.float64))


def simpson_index(neighbours: Neighbours, groups: np.ndarray, perplexity: float, tol: float = 1e-5) -> np.ndarray:
    """Per point, the Simpson index of ``groups`` (int (N,)) among its neighbours, weighted by
    exp(-beta x distance) with beta set so the weights' entropy is log(perplexity) (binary search, at
    most 50 steps, as LISI does). LISI is its inverse. A point whose weights vanish gets -1 (as scib-metrics)."""
    distances = neighbours.distances
    n = len(distances)
    beta = np.ones(n)
    low = np.full(n, -np.inf)
    high = np.full(n, np.inf)
    target = np.log(perplexity)
    entropy, weights = _entropy(distances, beta)
    for _ in range(50):
        diff = entropy - target
        active = np.abs(diff) > tol
        if not active.any():
            break
        up = active & (diff > 0)
        down = active & (diff <= 0)
        low[up] = beta[up]
        beta[up] = np.where(np.isinf(high[up]), beta[up] * 2, (beta[up] + high[up]) / 2)
        high[down] = beta[down]
        beta[down] = np.where(np.isinf(low[down]), beta[down] / 2, (beta[down] + low[down]) / 2)
        entropy, weights = _entropy(distances, beta)
    neighbour_groups = groups[neighbours.indices]
    n_groups = int(groups.max()) + 1
    shares = np.zeros((n, n_groups))
    np.add.at(shares, (np.repeat(np.arange(n), distances.shape[1]), neighbour_groups.ravel()), weights.ravel())
    simpson = (shares**2).sum(axis=1)
    return np.where(entropy == 0, -1.0, simpson)


def _entropy(distances: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    weights = np.exp(-distances * beta[:, None])
    total = weights.sum(axis=1)
    safe = np.where(total == 0, 1.0, total)
    entropy = np.where(total == 0, 0.0, np.log(safe) + beta * (distances * weights).sum(axis=1) / safe)
    return entropy, weights / safe[:, None]


def lisi(neighbours: Neighbours, groups: np.ndarray, perplexity: float = LISI_PERPLEXITY) -> np.ndarray:
    """Per point, the inverse Simpson index: the effective number of groups around it (1 .. number of groups)."""
    return 1.0 / simpson_index(neighbours, groups, perplexity)


def ilisi(neighbours: Neighbours, batches: np.ndarray, perplexity: float = LISI_PERPLEXITY) -> float:
    """(median iLISI - 1) / (B - 1): 1 when every neighbourhood holds all batches in their shares."""
    n_batches = len(np.unique(batches))
    return float((np.nanmedian(lisi(neighbours, batches, perplexity)) - 1) / (n_batches - 1))


def clisi(neighbours: Neighbours, labels: np.ndarray, perplexity: float = LISI_PERPLEXITY) -> float:
    """(C - median cLISI) / (C - 1): 1 when every neighbourhood holds one label."""
    n_labels = len(np.unique(labels))
    return float((n_labels - np.nanmedian(lisi(neighbours, labels, perplexity))) / (n_labels - 1))


def kbet_acceptance(indices: np.ndarray, batches: np.ndarray, alpha: float = KBET_ALPHA) -> float:
    """Share of points whose neighbours (``indices`` (N, k) into ``batches``) pass kBET's chi-squared
    test against the batches' shares (B - 1 degrees of freedom) at level ``alpha``."""
    n_batches = int(batches.max()) + 1
    shares = np.bincount(batches, minlength=n_batches) / len(batches)
    present = shares > 0
    k = indices.shape[1]
    counts = np.zeros((len(indices), n_batches))
    np.add.at(counts, (np.repeat(np.arange(len(indices)), k), batches[indices].ravel()), 1.0)
    expected = k * shares[present]
    statistic = ((counts[:, present] - expected) ** 2 / expected).sum(axis=1)
    p_values = chi2.sf(statistic, df=int(present.sum()) - 1)
    return float((p_values >= alpha).mean())


def kbet_per_label(points: np.ndarray, batches: np.ndarray, labels: np.ndarray, alpha: float = KBET_ALPHA) -> float:
    """kBET acceptance within each label (k0 = a quarter of its mean batch size, clamped to [10, 70]),
    averaged over labels; labels with fewer than 10 points or one batch are left out (NaN if none is left)."""
    scores = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        sub = batches[rows]
        codes = np.unique(sub, return_inverse=True)[1]
        sizes = np.bincount(codes)
        if len(rows) < 10 or len(sizes) < 2:
            continue
        k0 = int(np.clip(np.floor(sizes.mean() / 4), 10, 70))
        k0 = min(k0, len(rows) - 1)
        scores.append(kbet_acceptance(nearest_neighbours(points[rows], k0).indices, codes, alpha))
    return float(np.mean(scores)) if scores else float("nan")


def batch_asw(points: np.ndarray, batches: np.ndarray, labels: np.ndarray) -> float:
    """1 - |silhouette of the batch| per point within each label, averaged per label and then over
    labels; labels with one batch, or one point per batch, are left out (NaN if none is left)."""
    per_label = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        sub = batches[rows]
        n_batches = len(np.unique(sub))
        if n_batches == 1 or n_batches == len(rows):
            continue
        per_label.append(float((1 - np.abs(silhouette_samples(points[rows], sub))).mean()))
    return float(np.mean(per_label)) if per_label else float("nan")


def graph_connectivity(neighbours: Neighbours, labels: np.ndarray) -> float:
    """Per label, the share of its points in the largest strongly connected part of the directed kNN
    graph restricted to the label (as scib-metrics), averaged over labels: 1 when no label is split apart."""
    n, k = neighbours.indices.shape
    graph = csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), neighbours.indices.ravel())), shape=(n, n))
    shares = []
    for label in np.unique(labels[labels >= 0]):  # unlabelled points (-1) are no label of their own
        rows = np.flatnonzero(labels == label)
        _, parts = connected_components(graph[rows][:, rows], directed=True, connection="strong")
        shares.append(np.bincount(parts).max() / len(rows))
    return float(np.mean(shares))


def batch_mixing_metrics(
    points: np.ndarray,
    batches: np.ndarray,
    labels: np.ndarray | None = None,
    k: int = GRAPH_K,
    seed: int = 0,
    max_points: int = MAX_POINTS,
) -> dict[str, float]:
    """The scIB metrics of ``points`` (N, D) with technical ``batches`` (int (N,)) and, when given,
    ``labels`` (int (N,); -1 = unlabelled, left out of the label metrics). Empty with fewer than 2 batches.

    Without labels, the label-wise metrics take all points as one label. On more than ``max_points``
    points, all metrics are computed on a seeded subsample stratified by label and batch
    (``batch_metrics_points`` says how many).
    """
    batches = np.unique(np.asarray(batches), return_inverse=True)[1]
    if len(np.unique(batches)) < 2:
        return {}
    has_labels = labels is not None and len(np.unique(labels[labels >= 0])) >= 2
    groups: np.ndarray = np.asarray(labels) if has_labels else np.zeros(len(points), dtype=np.int64)
    if len(points) > max_points:
        strata = np.unique(np.stack([groups, batches], axis=1), axis=0, return_inverse=True)[1].ravel()
        rows = stratified_rows(strata, max_points, seed)
        points, batches, groups = points[rows], batches[rows], groups[rows]
        batches = np.unique(batches, return_inverse=True)[1]
    neighbours = nearest_neighbours(points, LISI_K)
    labelled = groups >= 0
    metrics = {
        "batch_knn_accuracy": knn_accuracy(points, batches, k=k, seed=seed),
        "batch_knn_chance": float(np.bincount(batches).max() / len(batches)),
        "batch_ilisi": ilisi(neighbours, batches),
        "batch_kbet": kbet_per_label(points[labelled], batches[labelled], groups[labelled]),
        "batch_asw": batch_asw(points[labelled], batches[labelled], groups[labelled]),
        "graph_connectivity": graph_connectivity(neighbours.first(k), groups),
        "batch_metrics_points": len(points),
    }
    if has_labels:
        neighbours_l = nearest_neighbours(points[labelled], LISI_K) if not labelled.all() else neighbours
        label_codes = np.unique(groups[labelled], return_inverse=True)[1]
        biology = {
            "clisi": clisi(neighbours_l, label_codes),
            "knn": knn_accuracy(points[labelled], label_codes, k=k, seed=seed),
            "silhouette": (silhouette_score(points[labelled], label_codes) + 1) / 2,
        }
        metrics["clisi"] = biology["clisi"]
        metrics["class_knn_accuracy"] = biology["knn"]  # on features too (a map's own is knn_accuracy)
        metrics["class_silhouette"] = 2 * biology["silhouette"] - 1
        batch_side = [metrics[key] for key in ("batch_ilisi", "batch_kbet", "batch_asw", "graph_connectivity")]
        metrics["scib_total"] = float(0.4 * np.nanmean(batch_side) + 0.6 * np.mean(list(biology.values())))
    return {key: (round(value, 4) if isinstance(value, float) else value) for key, value in metrics.items()}


def batch_statement(coords: np.ndarray, batches: np.ndarray, labels: np.ndarray, column: str, seed: int = 0) -> str:
    """One sentence on whether the map is organised by the technical batch ``column`` (codes (N,)):
    kNN predicting the batch against chance, and iLISI. "Organised by" when kNN beats chance by more
    than half of what it could (a map split 50/50 into two plates: 1.0 against 0.5)."""
    metrics = batch_mixing_metrics(coords, batches, labels if (labels >= 0).any() else None, seed=seed)
    if not metrics:
        return f"one value of {column} only: nothing to say about batch effects"
    accuracy, chance, ilisi = metrics["batch_knn_accuracy"], metrics["batch_knn_chance"], metrics["batch_ilisi"]
    measured = (
        f"kNN tells the {column} of {accuracy:.0%} of the points (chance {chance:.0%}), iLISI {ilisi:.2f} (1 = mixed)"
    )
    if accuracy - chance > 0.5 * (1 - chance):
        return f"the map is organised by {column} (a technical batch): {measured}"
    return f"the batches of {column} are mixed in the map: {measured}"
