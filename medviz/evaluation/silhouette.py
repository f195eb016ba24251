"""Exact silhouette score, chunked so memory stays bounded for hundreds of thousands of points.

Equal to ``sklearn.metrics.silhouette_score(points, labels)`` (Euclidean), but it never holds
the N x N distance matrix: each chunk of rows computes its distances to all points and sums them
per cluster with one matrix product. Runs on the GPU when one is given.
"""

from __future__ import annotations

import numpy as np
import torch


def silhouette_score(
    points: np.ndarray,
    labels: np.ndarray,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
) -> float:
    """Mean silhouette (b - a) / max(a, b) over all points, with labels as clusters.

    Args:
        points: (N, d) coordinates.
        labels: (N,) cluster labels (any integers).
        chunk_size: rows per block; memory is O(chunk_size · N). Default: as many rows as keep
            one block's distances near 256 MB (about 100 rows for PCam's 327,680 points).
        device: where to compute; default CUDA if available, else CPU.
    """
    labels = np.asarray(labels)
    _, cluster = np.unique(labels, return_inverse=True)
    n_clusters = int(cluster.max()) + 1
    if not 2 <= n_clusters <= len(labels) - 1:
        raise ValueError(f"silhouette needs 2 <= n_clusters <= n_points - 1, got {n_clusters} clusters")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    chunk_size = chunk_size or int(np.clip(2**25 // len(labels), 1, 4096))
    x = torch.as_tensor(np.asarray(points), dtype=torch.float64, device=dev)
    c = torch.as_tensor(cluster, device=dev)
    one_hot = torch.nn.functional.one_hot(c, n_clusters).to(torch.float64)  # (N, C)
    sizes = one_hot.sum(0)  # (C,)
    scores = torch.empty(len(x), dtype=torch.float64, device=dev)
    for start in range(0, len(x), chunk_size):
        rows = slice(start, start + chunk_size)
        dist_sums = torch.cdist(x[rows], x) @ one_hot  # (chunk, C): summed distance to each cluster
        own = c[rows]
        own_size = sizes[own]
        a = dist_sums.gather(1, own.unsqueeze(1)).squeeze(1) / (own_size - 1).clamp(min=1)
        mean_other = dist_sums / sizes
        mean_other.scatter_(1, own.unsqueeze(1), float("inf"))
        b = mean_other.min(dim=1).values
        s = (b - a) / torch.maximum(a, b)
        # scikit-learn's convention: a point alone in its cluster scores 0.
        scores[rows] = torch.where(own_size > 1, torch.nan_to_num(s, nan=0.0), torch.zeros_like(s))
    return float(scores.mean())
