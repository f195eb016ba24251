"""Linear evaluation of high-dimensional features (paper §4, "Evaluation for SimCLR")."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def linear_probe_accuracy(
    features: np.ndarray, labels: np.ndarray, is_test: np.ndarray, max_iter: int = 1000, seed: int = 0
) -> float:
    """Test accuracy of StandardScaler -> LogisticRegression(solver="saga", no penalty).

    Trained on the images not marked as test (the paper: train + val), evaluated on the test set.

    Args:
        features: (N, D) features, e.g. SimCLR's 512-D backbone output.
        labels: (N,) class labels.
        is_test: (N,) bool, True for the official test split.
        max_iter: saga iterations.
        seed: solver seed.
    """
    is_test = np.asarray(is_test, dtype=bool)
    if is_test.all() or not is_test.any():
        raise ValueError("linear evaluation needs both a test split and a train/val split")
    # C = inf is the paper's penalty=None (no regularisation), spelled the way scikit-learn >= 1.8 asks.
    model = make_pipeline(
        StandardScaler(), LogisticRegression(solver="saga", C=np.inf, max_iter=max_iter, random_state=seed)
    )
    model.fit(features[~is_test], labels[~is_test])
    return float(model.score(features[is_test], labels[is_test]))


def held_out(labels: np.ndarray, fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """(N,) bool, True for a class-stratified ``fraction`` of the images: the test set of a linear
    evaluation on a dataset without an official split (synthblood, a folder). Seeded: every run of
    one dataset is evaluated on the same images."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    _, test = train_test_split(rows, test_size=fraction, stratify=labels, random_state=seed)
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test] = True
    return is_test
