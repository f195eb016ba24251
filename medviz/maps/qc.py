"""Data quality control from a map: flag tight clusters and isolated islands (paper Fig. 6).

In a t-SimCNE map, near-identical images (duplicates) collapse into clusters far denser than
anything around them, and images sharing an artefact form small islands away from the rest.
Both are found from the map alone, relative to its own typical spacing m (the median distance
of a point to its ``k``-th nearest neighbour). HDBSCAN (density-based; at least 15 points, or
``min_size`` if larger) splits the map into clusters; each cluster is then measured:

* tight cluster: its points sit at under half the map's typical spacing from their own ``k``-th
  neighbour (planted duplicates measured 0.24-0.37 m on synthblood, ordinary clusters 0.74-1.3 m);
* isolated island: it holds < 5 % of the points and joins the rest of the map only at a
  mutual-reachability distance (HDBSCAN's own measure: a distance raised to both points' core
  distances) of >= 1.6 m, i.e. across a drop in density. On synthblood maps planted artefacts
  measured 1.71-1.95 m; the small clusters that HDBSCAN cuts off a class 1.09-1.52 m. Points
  HDBSCAN leaves as noise join an island when their nearest clustered point is in it and closer
  than 2 m: the stragglers of a sparse group.

Near-identical images packed tighter than HDBSCAN's smallest cluster are caught as well: any
``min_size`` points linked at 0.25 m (DBSCAN) form a tight cluster.

HDBSCAN's time grows faster than linearly, so a map of more than ``CLUSTER_SAMPLE`` points is
clustered on a seeded sample and every other point follows its nearest sampled point; the DBSCAN
search for tight clusters runs on all points (it is near-linear). :func:`sampling_note` says so.

Each group gets the mean pixel correlation of its images next to that of as many other images of
the same classes, so near-duplicate groups read as such.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import DBSCAN, HDBSCAN
from sklearn.neighbors import NearestNeighbors

from medviz.errors import ConfigError


@dataclass
class Group:
    kind: str  # "tight cluster" or "isolated island"
    indices: np.ndarray
    spacing: float  # median distance of a member to its k-th neighbour, in units of the map's typical one
    separation: float  # the level at which it joins the rest of the map (_separation), same units
    image_similarity: float | None = None  # mean pairwise pixel correlation
    typical_similarity: float | None = None  # the same for as many other images of the same classes

    @property
    def size(self) -> int:
        return len(self.indices)

    @property
    def correlation(self) -> str:
        """ "0.84 (its classes: 0.68)": the group's image correlation and its baseline, or "" without images."""
        if self.image_similarity is None:
            return ""
        baseline = f" (its classes: {self.typical_similarity:.2f})" if self.typical_similarity is not None else ""
        return f"{self.image_similarity:.2f}{baseline}"


#: HDBSCAN's time grows faster than linearly with the points (2 cores: 50,000 in 8 s, 100,000 in
#: 35 s, 200,000 in 145 s), so a larger map is clustered on a seeded sample of this many points.
CLUSTER_SAMPLE = 50_000

#: A tight cluster is flagged only below this share of the map: near-duplicates are copies of a few
#: images (the planted 100 in 2,100 are 4.8 %), while a quarter or more of a map packed tight is a
#: class of alike images (the one case where labels cannot tell, an unlabelled map).
TIGHT_MAX_FRACTION = 0.25


def _a_class_of_its_own(labels: np.ndarray, members: np.ndarray, purity: float = 0.8, share: float = 0.9) -> bool:
    """Whether a group is mostly (``purity``) one class and holds nearly all (``share``) of that class.

    Such a group is that class, set apart or packed tight because its images look alike -- what a good
    map shows. Duplicates leave the rest of their class elsewhere (the planted 100 in a class of 175
    are 57 % of it); artefacts mix classes.
    """
    values, counts = np.unique(labels[members], return_counts=True)
    top = int(np.argmax(counts))
    if values[top] < 0 or counts[top] < purity * len(members):
        return False
    return counts[top] >= share * int((labels == values[top]).sum())


def _components(coords: np.ndarray, eps: float, min_samples: int) -> list[np.ndarray]:
    labels = DBSCAN(eps=eps, min_samples=min_samples).fit(coords).labels_
    return [np.flatnonzero(labels == c) for c in range(labels.max() + 1)]


def image_similarity(images: np.ndarray, sample: int = 50, seed: int = 0) -> float:
    """Mean pairwise Pearson correlation of (a sample of) the images' pixels."""
    rng = np.random.default_rng(seed)
    rows = images if len(images) <= sample else images[rng.choice(len(images), sample, replace=False)]
    flat = rows.reshape(len(rows), -1).astype(np.float64)
    corr = np.corrcoef(flat)
    return float(corr[~np.eye(len(rows), dtype=bool)].mean()) if len(rows) > 1 else 1.0


def _separation(coords: np.ndarray, members: np.ndarray, core: np.ndarray, candidates: int = 20) -> float:
    """Mutual-reachability distance at which the group first reaches a point outside it.

    The distance between two points, raised to either point's core distance (``core``, (N,): its
    distance to its k-th neighbour), as HDBSCAN measures it: the density level at which the group
    joins the rest of the map. Checked against each member's ``candidates`` nearest outsiders.
    """
    outside = np.ones(len(coords), bool)
    outside[members] = False
    if not outside.any():
        return float("inf")
    n = min(candidates, int(outside.sum()))
    distances, nearest = NearestNeighbors(n_neighbors=n).fit(coords[outside]).kneighbors(coords[members])
    reach = np.maximum(np.maximum(distances, core[outside][nearest]), core[members][:, None])
    return float(reach.min())


def _with_stragglers(coords: np.ndarray, clusters: np.ndarray, label: int, reach: float) -> np.ndarray:
    """Members of cluster ``label`` plus the noise points whose nearest clustered point is one, within ``reach``."""
    noise = np.flatnonzero(clusters < 0)
    clustered = np.flatnonzero(clusters >= 0)
    if len(noise) == 0:
        return np.flatnonzero(clusters == label)
    distances, nearest = NearestNeighbors(n_neighbors=1).fit(coords[clustered]).kneighbors(coords[noise])
    joins = (clusters[clustered[nearest[:, 0]]] == label) & (distances[:, 0] < reach)
    return np.sort(np.concatenate([np.flatnonzero(clusters == label), noise[joins]]))


def _lookalikes(labels: np.ndarray, members: np.ndarray, sample: int = 50, seed: int = 0) -> np.ndarray:
    """Up to ``sample`` images outside the group with the labels of as many random members: a class-matched baseline."""
    rng = np.random.default_rng(seed)
    outside = np.ones(len(labels), bool)
    outside[members] = False
    picked = []
    for member in rng.permutation(members)[:sample]:
        same = np.flatnonzero(outside & (labels == labels[member]))
        if len(same):
            picked.append(int(rng.choice(same)))
    return np.unique(picked).astype(int)


def check_settings(min_size: int, tight_spacing: float, island_fraction: float, island_separation: float) -> None:
    """Raise a ConfigError naming every QC threshold and its range when one is out of range."""
    if not (tight_spacing > 0 and 0 < island_fraction <= 1 and island_separation > 0 and min_size >= 2):
        raise ConfigError(
            f"qc settings out of range: tight spacing {tight_spacing} (> 0), island fraction {island_fraction} "
            f"(0-1], island separation {island_separation} (> 0), min size {min_size} (>= 2)"
        )


def find_groups(
    coords: np.ndarray,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    min_size: int = 10,
    k: int = 10,
    tight_spacing: float = 0.5,
    island_fraction: float = 0.05,
    island_separation: float = 1.6,
    cluster_sample: int = CLUSTER_SAMPLE,
    seed: int = 0,
) -> list[Group]:
    """Tight clusters and isolated islands of a map (N, 2).

    ``images`` (N, H, W, 3) adds each group's mean pixel correlation; ``labels`` (N,) adds the same
    for other images of the group's classes, the baseline that tells near-duplicates apart.

    ``tight_spacing`` and ``island_separation`` are in units of the map's typical spacing (module docstring).
    A map of more than ``cluster_sample`` points is clustered on a seeded sample of that many
    (:func:`sampling_note` says what that means for the result); the search for points packed
    tighter than HDBSCAN's smallest cluster always covers every point.
    """
    check_settings(min_size, tight_spacing, island_fraction, island_separation)
    if cluster_sample < 10 * max(min_size, 15):
        raise ConfigError(
            f"a cluster sample of {cluster_sample} points is too small to find groups of {max(min_size, 15)}; "
            f"use at least {10 * max(min_size, 15)} (default {CLUSTER_SAMPLE:,})"
        )
    if len(coords) <= max(min_size, 15):
        raise ConfigError(f"the map has {len(coords)} points; quality control needs more than {max(min_size, 15)}")
    k = min(k, len(coords) - 1)
    spacing = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords)[0][:, -1]
    m = float(np.median(spacing))
    shape = (min_size, k, tight_spacing, island_fraction, island_separation)
    if len(coords) <= cluster_sample:
        groups = _cluster_groups(coords, labels, spacing, *shape)
    else:
        sample = np.sort(np.random.default_rng(seed).choice(len(coords), cluster_sample, replace=False))
        within = NearestNeighbors(n_neighbors=k + 1).fit(coords[sample]).kneighbors(coords[sample])[0][:, -1]
        found = _cluster_groups(coords[sample], None if labels is None else labels[sample], within, *shape)
        groups = _followed_by_nearest(coords, sample, found)

    flagged = set(np.concatenate([g.indices for g in groups]).tolist()) if groups else set()
    for component in _components(coords, 0.25 * m, 5):
        if (
            len(component) >= min_size
            and not set(component.tolist()) & flagged
            and _suspicious(component, len(coords), TIGHT_MAX_FRACTION, labels)
        ):
            groups.append(Group("tight cluster", component, *_measures(coords, component, spacing, m)))
    if images is not None:
        for group in groups:
            group.image_similarity = image_similarity(images[group.indices])
            lookalikes = _lookalikes(labels, group.indices) if labels is not None else []
            if len(lookalikes) > 1:
                group.typical_similarity = image_similarity(images[lookalikes])
    return sorted(groups, key=lambda g: -g.size)


def _cluster_groups(
    coords: np.ndarray,
    labels: np.ndarray | None,
    spacing: np.ndarray,
    min_size: int,
    k: int,
    tight_spacing: float,
    island_fraction: float,
    island_separation: float,
) -> list[Group]:
    """The groups HDBSCAN's clusters of ``coords`` (n, 2) give; ``spacing`` (n,): each point's
    distance to its ``k``-th neighbour among them."""
    m = float(np.median(spacing))
    clusters = HDBSCAN(min_cluster_size=max(min_size, 15), min_samples=10, copy=True).fit(coords).labels_
    groups: list[Group] = []
    for label in range(clusters.max() + 1):
        members = np.flatnonzero(clusters == label)
        relative_spacing, separation = _measures(coords, members, spacing, m)
        if relative_spacing < tight_spacing:
            if _suspicious(members, len(coords), TIGHT_MAX_FRACTION, labels):
                groups.append(Group("tight cluster", members, relative_spacing, separation))
        elif separation >= island_separation:
            grown = _with_stragglers(coords, clusters, label, 2 * m)
            # its stragglers count towards the island's size
            if _suspicious(grown, len(coords), island_fraction, labels):
                groups.append(Group("isolated island", grown, relative_spacing, separation))
    return groups


def _measures(coords: np.ndarray, members: np.ndarray, spacing: np.ndarray, m: float) -> tuple[float, float]:
    """(spacing, separation) of a group, in units of the map's typical spacing m."""
    return float(np.median(spacing[members])) / m, _separation(coords, members, spacing) / m


def _suspicious(members: np.ndarray, points: int, largest: float, labels: np.ndarray | None) -> bool:
    """Small enough (under ``largest`` of the ``points``) to be a problem, and not simply one class
    that the map keeps together."""
    return len(members) < largest * points and not (labels is not None and _a_class_of_its_own(labels, members))


def _followed_by_nearest(coords: np.ndarray, sample: np.ndarray, groups: list[Group]) -> list[Group]:
    """Groups found on ``coords[sample]``, grown to every point whose nearest sampled point is in them."""
    nearest = NearestNeighbors(n_neighbors=1).fit(coords[sample]).kneighbors(coords)[1][:, 0]
    grown = []
    for group in groups:
        inside = np.zeros(len(sample), bool)
        inside[group.indices] = True
        grown.append(Group(group.kind, np.flatnonzero(inside[nearest]), group.spacing, group.separation))
    return grown


def sampling_note(points: int, cluster_sample: int = CLUSTER_SAMPLE, min_size: int = 10) -> str:
    """What clustering a sample of a large map means for its result ('' when every point was clustered)."""
    if points <= cluster_sample:
        return ""
    smallest = int(round(max(min_size, 15) * points / cluster_sample))
    return (
        f"HDBSCAN clustered a seeded sample of {cluster_sample:,} of the {points:,} points (its time grows faster "
        f"than linearly; set --cluster-sample to change it) and every other point joined the group of its nearest "
        f"sampled point, so an island of fewer than about {smallest:,} images may go unflagged; points packed "
        "tighter than that were searched among all points"
    )


def recall(groups: list[Group], injected: np.ndarray) -> float:
    """Fraction of planted images (mask (N,)) inside some flagged group."""
    flagged = np.zeros(len(injected), bool)
    for group in groups:
        flagged[group.indices] = True
    return float(flagged[injected].mean()) if injected.any() else float("nan")
