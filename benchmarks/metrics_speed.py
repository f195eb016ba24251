"""Map metrics at scale: our silhouette and kNN accuracy vs scikit-learn's, same points, same values.

Points are a synthetic 2-D map (N points in 8 Gaussian clusters, like a t-SimCNE map of 8
classes); both implementations get the same arrays. scikit-learn's silhouette is O(N²) in time
and, at 330k points, takes many minutes on a small CPU: ``--sklearn-max`` skips it above a size
(the row then shows ours only).

    python -m benchmarks.metrics_speed [--sizes 100000 330000] [--sklearn-max 100000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import silhouette_score as sk_silhouette
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from benchmarks.common import header
from medviz.evaluation import knn_accuracy, silhouette_score


def synthetic_map(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 8, n)
    centres = rng.normal(0, 30, (8, 2))
    return centres[labels] + rng.normal(0, 6, (n, 2)), labels


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def sklearn_knn(points: np.ndarray, labels: np.ndarray, k: int = 15, seed: int = 0) -> float:
    x_tr, x_te, y_tr, y_te = train_test_split(points, labels, test_size=0.1, stratify=labels, random_state=seed)
    return float(KNeighborsClassifier(k).fit(x_tr, y_tr).score(x_te, y_te))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 330_000])
    parser.add_argument(
        "--sklearn-max", type=int, default=100_000, help="largest N to run scikit-learn's silhouette on"
    )
    args = parser.parse_args()
    header("silhouette and kNN accuracy (seconds), ours vs scikit-learn")
    warm_points, warm_labels = synthetic_map(3000)
    _, compile_seconds = timed(lambda: silhouette_score(warm_points, warm_labels, device="cpu"))
    print(f"(first call compiles the CPU kernel: {compile_seconds:.1f} s, once per process; not counted below)")
    print(f"{'metric':10} {'N':>8} {'scikit-learn':>13} {'ours':>8} {'ratio':>7} {'|difference|':>13}")
    for n in args.sizes:
        points, labels = synthetic_map(n)
        ours, ours_s = timed(lambda p=points, lab=labels: silhouette_score(p, lab, device="cpu"))
        if n <= args.sklearn_max:
            theirs, theirs_s = timed(lambda p=points, lab=labels: sk_silhouette(p, lab))
            ratio, diff = theirs_s / ours_s, abs(ours - theirs)
            print(f"{'silhouette':10} {n:>8} {theirs_s:>12.1f}s {ours_s:>7.1f}s {ratio:>6.1f}x {diff:>13.1e}")
        else:
            print(f"{'silhouette':10} {n:>8} {'(skipped)':>13} {ours_s:>7.1f}s")
        ours_knn, ours_knn_s = timed(lambda p=points, lab=labels: knn_accuracy(p, lab))
        theirs_knn, theirs_knn_s = timed(lambda p=points, lab=labels: sklearn_knn(p, lab))
        print(
            f"{'kNN k=15':10} {n:>8} {theirs_knn_s:>12.1f}s {ours_knn_s:>7.1f}s {theirs_knn_s / ours_knn_s:>6.1f}x "
            f"{abs(ours_knn - theirs_knn):>13.1e}"
        )


if __name__ == "__main__":
    main()
