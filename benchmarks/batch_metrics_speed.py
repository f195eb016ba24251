"""The batch-mixing metrics at a million points: on the 2-D map and on 128-D features.

Both are measured on the seeded, class- and batch-stratified subsample the metrics take above
``eval.batch_metrics_points`` (100,000), with exact neighbours (a KD-tree on the map, brute force on
features); the time includes drawing the subsample.

    python -m benchmarks.batch_metrics_speed [--points 1000000] [--max-points 100000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import header
from medviz.evaluation.batch_mixing import batch_mixing_metrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--max-points", type=int, default=100_000)
    args = parser.parse_args()
    header(f"batch-mixing metrics: --points {args.points} --max-points {args.max_points}")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, args.points)
    batches = rng.integers(0, 4, args.points)
    centres = rng.normal(0, 20, (10, 2))
    coords = (centres[labels] + rng.normal(0, 1, (args.points, 2))).astype(np.float32)
    features = np.concatenate(
        [coords, rng.normal(0, 1, (args.points, 126)).astype(np.float32) + batches[:, None] * 0.2], axis=1
    )
    for name, points in (("2-D map", coords), ("128-D features", features)):
        start = time.perf_counter()
        metrics = batch_mixing_metrics(points, batches, labels, max_points=args.max_points)
        seconds = time.perf_counter() - start
        shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float))
        print(f"{name}: {seconds:.1f} s on {metrics['batch_metrics_points']:,} of {args.points:,} points; {shown}")


if __name__ == "__main__":
    main()
