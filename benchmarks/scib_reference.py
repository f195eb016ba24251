"""Reference values of the batch-mixing metrics from scib-metrics itself, kept as a test fixture.

scib-metrics brings JAX and is no dependency of medviz; run this once in an environment that has it
(`pip install -e .[scib]`; scib-metrics 0.5.x, the last series for Python 3.11):

    python -m benchmarks.scib_reference tests/evaluation/scib_reference.json

It writes three small 2-D maps (well mixed, split by batch within each class, one class on a batch
of its own) and, for each, scib-metrics' iLISI, cLISI, batch ASW and graph connectivity on exact
neighbours (the point itself first, as scib-metrics' nearest-neighbour results have it).
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

import numpy as np
from sklearn.neighbors import NearestNeighbors


def maps() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 150)
    centres = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])
    points = centres[labels] + rng.normal(0, 1.5, (len(labels), 2))
    mixed = rng.integers(0, 2, len(labels))
    split = np.tile([0, 1, 2], len(labels) // 3)
    shifted = points + np.stack([split * 2.5, np.zeros(len(labels))], axis=1)
    confounded = np.where(labels == 0, 0, rng.integers(1, 3, len(labels)))
    points = points.round(6)  # as kept in the fixture: both sides compute on the same numbers
    shifted = shifted.round(6)
    return {
        "mixed": (points, mixed, labels),
        "split": (shifted, split, labels),
        "confounded": (points, confounded, labels),
    }


def main() -> None:
    import scib_metrics
    from scib_metrics.nearest_neighbors import NeighborsResults

    out = {"scib_metrics": version("scib-metrics"), "maps": {}}
    for name, (points, batches, labels) in maps().items():
        distances, indices = NearestNeighbors(n_neighbors=91).fit(points).kneighbors(points)
        k90 = NeighborsResults(indices=indices, distances=distances)
        k15 = NeighborsResults(indices=indices[:, :16], distances=distances[:, :16])
        out["maps"][name] = {
            "points": points.round(6).tolist(),
            "batches": batches.tolist(),
            "labels": labels.tolist(),
            "batch_ilisi": float(scib_metrics.ilisi_knn(k90, batches, perplexity=30)),
            "clisi": float(scib_metrics.clisi_knn(k90, labels, perplexity=30)),
            "batch_asw": float(scib_metrics.silhouette_batch(points, labels, batches)),
            "graph_connectivity": float(scib_metrics.graph_connectivity(k15, labels)),
        }
    with open(sys.argv[1], "w") as f:
        json.dump(out, f)
    inputs = ("points", "batches", "labels")
    values = {n: {k: v for k, v in m.items() if k not in inputs} for n, m in out["maps"].items()}
    print(json.dumps(values, indent=1))


if __name__ == "__main__":
    main()
