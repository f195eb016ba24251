import warnings

import numpy as np
import pytest
from sklearn.metrics import silhouette_score as sk_silhouette
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from medviz.evaluation import knn_accuracy, silhouette_score


def clustered(n=600, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    points = rng.normal(0, 1, (n, 2)) + labels[:, None] * 2.5
    return points, labels


@pytest.mark.parametrize("method", ["compiled", "matmul"])
@pytest.mark.parametrize("data", ["random", "clustered", "large"])
def test_silhouette_equals_sklearn(data, method):
    points, labels = clustered(5000 if data == "large" else 600)  # large: several 2048-row blocks
    if data == "random":
        points = np.random.default_rng(3).normal(size=points.shape)
    labels = np.where(labels == 2, 7, labels)  # labels need not be 0..C-1
    ours = silhouette_score(points, labels, chunk_size=97, device="cpu", method=method)  # chunk not dividing N
    assert ours == pytest.approx(sk_silhouette(points, labels), abs=1e-9)


@pytest.mark.parametrize("method", ["compiled", "matmul"])
def test_silhouette_singleton_cluster_scores_zero_like_sklearn(method):
    points, labels = clustered(50)
    labels = labels.copy()
    labels[0] = 9  # a cluster of one point
    ours = silhouette_score(points, labels, device="cpu", method=method)
    assert ours == pytest.approx(sk_silhouette(points, labels), abs=1e-9)


def test_silhouette_of_higher_dimensional_points_uses_the_exact_matmul_path():
    points, labels = clustered(300)
    points = np.hstack([points, points[:, :1] ** 2])  # 3-D
    assert silhouette_score(points, labels, device="cpu") == pytest.approx(sk_silhouette(points, labels), abs=1e-9)


def test_knn_equals_sklearn_on_the_same_split():
    points, labels = clustered(seed=1)
    x_tr, x_te, y_tr, y_te = train_test_split(points, labels, test_size=0.1, stratify=labels, random_state=5)
    expected = KNeighborsClassifier(15).fit(x_tr, y_tr).score(x_te, y_te)
    assert knn_accuracy(points, labels, k=15, seed=5) == pytest.approx(expected)
    assert knn_accuracy(points, labels) > 0.8  # well-separated clusters are classified well


def test_linear_probe_equals_sklearn_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from medviz.evaluation.linear import linear_probe_accuracy

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    features = rng.normal(size=(300, 8)) + labels[:, None]
    is_test = np.arange(300) >= 240
    scaler = StandardScaler().fit(features[~is_test])
    with warnings.catch_warnings():  # the paper's exact call; newer scikit-learn deprecates its spelling
        warnings.simplefilter("ignore", FutureWarning)
        model = LogisticRegression(solver="saga", penalty=None, max_iter=1000, random_state=0)
        model.fit(scaler.transform(features[~is_test]), labels[~is_test])
    expected = model.score(scaler.transform(features[is_test]), labels[is_test])
    assert linear_probe_accuracy(features, labels, is_test) == pytest.approx(expected)
    assert expected > 0.6


def test_silhouette_falls_back_to_the_exact_path_without_a_compiler(monkeypatch, caplog):
    from medviz.evaluation import silhouette as module

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(module, "_compiled", None)
    monkeypatch.setattr(module, "_compile_failed", False)
    monkeypatch.setattr(module.torch, "compile", no_compiler)
    points, labels = clustered(200)
    with caplog.at_level("WARNING", logger="medviz"):
        ours = silhouette_score(points, labels, device="cpu")
    assert ours == pytest.approx(sk_silhouette(points, labels), abs=1e-9)
    assert "torch.compile unavailable" in caplog.text
