"""Data quality control from a map: flag tight clusters and isolated islands (paper Fig. 6).

In a t-SimCNE map, near-identical images (duplicates) collapse into clusters far denser than
anything around them, and images sharing an artefact form small islands away from the rest.
Both are found from the map alone, relative to its own typical spacing (the median distance of a
point to its ``k``-th neighbour, m):

* tight cluster: >= ``min_size`` points connected at distance 0.25 m (DBSCAN, 5 neighbours);
* isolated island: a cluster that HDBSCAN (density-based, at least 15 points) separates from the
  rest and that holds < 5 % of the points -- a small group set apart by a drop in density, even
  when a thin trail still links it to a class.

Each group gets the mean pixel correlation of its images, so near-duplicate groups read as such.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.cluster import DBSCAN, HDBSCAN
from sklearn.neighbors import NearestNeighbors

from medviz.plots import plot_map


@dataclass
class Group:
    kind: str  # "tight cluster" or "isolated island"
    indices: np.ndarray
    image_similarity: float | None = None  # mean pairwise pixel correlation

    @property
    def size(self) -> int:
        return len(self.indices)


def typical_spacing(coords: np.ndarray, k: int = 10) -> float:
    """Median distance from a point to its ``k``-th nearest neighbour in the map."""
    k = min(k, len(coords) - 1)
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords)
    return float(np.median(distances[:, -1]))


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


def find_groups(coords: np.ndarray, images: np.ndarray | None = None, min_size: int = 10, k: int = 10) -> list[Group]:
    """Tight clusters and isolated islands of a map (N, 2); ``images`` (N, H, W, 3) adds their similarity."""
    m = typical_spacing(coords, k)
    groups = [Group("tight cluster", c) for c in _components(coords, 0.25 * m, 5) if len(c) >= min_size]
    tight = set(np.concatenate([g.indices for g in groups])) if groups else set()
    clusters = HDBSCAN(min_cluster_size=max(min_size, 15), min_samples=10).fit(coords).labels_
    for label in range(clusters.max() + 1):
        members = np.flatnonzero(clusters == label)
        if len(members) < 0.05 * len(coords) and not set(members) <= tight:
            groups.append(Group("isolated island", members))
    if images is not None:
        for group in groups:
            group.image_similarity = image_similarity(images[group.indices])
    return sorted(groups, key=lambda g: -g.size)


def recall(groups: list[Group], injected: np.ndarray) -> float:
    """Fraction of planted images (mask (N,)) inside some flagged group."""
    flagged = np.zeros(len(injected), bool)
    for group in groups:
        flagged[group.indices] = True
    return float(flagged[injected].mean()) if injected.any() else float("nan")


def write_report(
    out_dir: Path,
    coords: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    images: np.ndarray | None,
    groups: list[Group],
    injected: np.ndarray | None = None,
) -> Path:
    """``report.md``, ``flagged.csv``, ``overview.png`` (flagged points in black) and one thumbnail strip per group."""
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    flagged = np.concatenate([g.indices for g in groups]) if groups else np.empty(0, int)
    plot_map(
        coords,
        labels,
        class_names,
        out_dir / "overview.png",
        title=f"{len(groups)} flagged groups",
        overlay=coords[flagged],
        overlay_label="flagged",
    )
    with open(out_dir / "flagged.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["index", "group", "kind", "label"])
        for number, group in enumerate(groups):
            writer.writerows([int(i), number, group.kind, int(labels[i])] for i in group.indices)
    lines = [f"# Quality control: {len(groups)} flagged groups ({len(flagged)} of {len(coords)} images)", ""]
    if injected is not None and injected.any():
        lines += [f"Planted images flagged (recall): {recall(groups, injected):.3f} of {int(injected.sum())}", ""]
    lines += ["| group | kind | images | mean image correlation | classes | thumbnails |", "|---|---|---|---|---|---|"]
    for number, group in enumerate(groups):
        names, counts = np.unique(labels[group.indices], return_counts=True)
        classes = ", ".join(
            f"{class_names[n] if n >= 0 else 'unlabelled'} {c}" for n, c in zip(names, counts, strict=True)
        )
        similarity = f"{group.image_similarity:.2f}" if group.image_similarity is not None else ""
        strip = ""
        if images is not None:
            shown = images[group.indices[:20]]
            fig, axes = plt.subplots(1, len(shown), figsize=(len(shown), 1.1), squeeze=False)
            for ax, image in zip(axes[0], shown, strict=True):
                ax.imshow(image)
                ax.axis("off")
            fig.savefig(out_dir / f"group{number}.png", bbox_inches="tight", dpi=100)
            plt.close(fig)
            strip = f"![group {number}](group{number}.png)"
        lines.append(f"| {number} | {group.kind} | {group.size} | {similarity} | {classes} | {strip} |")
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
