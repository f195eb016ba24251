"""kNN classification accuracy of an embedding (paper §4: k = 15, 9:1 train/test split)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier


def knn_accuracy(points: np.ndarray, labels: np.ndarray, k: int = 15, test_size: float = 0.1, seed: int = 0) -> float:
    """Accuracy of a k-nearest-neighbour classifier on a stratified, seeded 9:1 split.

    Args:
        points: (N, d) coordinates (d = 2 for a map).
        labels: (N,) integer class labels.
        k: neighbours (paper: 15).
        test_size: held-out fraction (paper: 0.1).
        seed: split seed; the same seed gives the same split.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError("kNN accuracy needs at least 2 classes")
    # Stratify only when every class can appear on both sides of the split (tiny datasets can't).
    n_test = int(np.ceil(test_size * len(labels)))
    stratify = labels if counts.min() >= 2 and n_test >= len(classes) else None
    x_train, x_test, y_train, y_test = train_test_split(
        points, labels, test_size=test_size, stratify=stratify, random_state=seed
    )
    model = KNeighborsClassifier(n_neighbors=min(k, len(x_train)))
    return float(model.fit(x_train, y_train).score(x_test, y_test))


def knn_recall_per_class(
    points: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...] | list[str], k: int = 15, seed: int = 0
) -> dict[str, float]:
    """Per-class recall of k-nearest-neighbour predictions, every point predicted once (10-fold).

    Which classes the map keeps apart and which it mixes -- e.g. two phenotypes that differ only
    in one channel's intensity. Classes with fewer than 10 points are predicted in fewer folds.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    labels = np.asarray(labels)
    folds = int(min(10, np.bincount(labels).max()))
    counts = np.bincount(labels)
    cv = StratifiedKFold(n_splits=max(2, min(folds, counts[counts > 0].min())), shuffle=True, random_state=seed)
    model = KNeighborsClassifier(n_neighbors=min(k, len(labels) - len(labels) // cv.n_splits - 1))
    predicted = cross_val_predict(model, points, labels, cv=cv)
    return {str(class_names[c]): float(np.mean(predicted[labels == c] == c)) for c in np.unique(labels)}


def knn_cv_accuracy(points: np.ndarray, labels: np.ndarray, k: int = 15, folds: int = 5, seed: int = 0) -> float:
    """Accuracy of a k-nearest-neighbour classifier, every point predicted once (stratified ``folds``-fold).

    The protocol of the invariance checks (docs/invariance.md: plate kNN, k = 15, 5-fold): each point's
    technical batch (or treatment) predicted from its neighbours in the other folds.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    labels = np.asarray(labels)
    counts = np.bincount(np.unique(labels, return_inverse=True)[1])
    splits = max(2, min(folds, int(counts.min())))
    cv = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    model = KNeighborsClassifier(n_neighbors=min(k, len(labels) - len(labels) // splits - 1))
    return float(np.mean(cross_val_predict(model, points, labels, cv=cv) == labels))
