"""The paper's measures of one map (§4: kNN accuracy, silhouette; per-class kNN recall), and of
the pixel t-SNE baseline, as they go into a run's ``metrics.json``."""

from __future__ import annotations

import logging

import numpy as np

from medviz.data.image_arrays import ImageArrays
from medviz.data.prepare.subset import stratified_rows
from medviz.evaluation.batch_mixing import batch_mixing_metrics
from medviz.evaluation.knn import knn_accuracy, knn_recall_per_class
from medviz.evaluation.silhouette import silhouette_score
from medviz.evaluation.tsne import pixel_tsne
from medviz.store.gather import gather

log = logging.getLogger("medviz")


def map_metrics(coords: np.ndarray, labels: np.ndarray, k: int, seed: int, class_names=None) -> dict:
    """kNN accuracy and silhouette of a map (and, given ``class_names``, each class's kNN recall);
    empty when there are fewer than 2 labelled classes."""
    labelled = labels >= 0
    if len(np.unique(labels[labelled])) < 2:
        return {}
    metrics = {
        "knn_accuracy": knn_accuracy(coords[labelled], labels[labelled], k=k, seed=seed),
        "silhouette": silhouette_score(coords[labelled], labels[labelled]),
    }
    if class_names is not None:
        metrics["knn_recall"] = knn_recall_per_class(coords[labelled], labels[labelled], class_names, k=k, seed=seed)
    return metrics


def batch_metrics(
    coords: np.ndarray, features: np.ndarray | None, data: ImageArrays, k: int, seed: int, max_points: int
) -> dict:
    """The scIB batch-mixing metrics (:mod:`medviz.evaluation.batch_mixing`) of the map and, prefixed
    ``features_``, of ``features`` (t-SimCNE's 128-D output; SimCLR/BYOL's backbone features); empty
    when the data have no batch column or one batch."""
    batches = data.batches()
    if batches is None:
        return {}
    codes, names = batches
    if len(names) < 2:
        log.info(f"batch column {data.batch_column} has one value ({names[0]}): no batch-mixing metrics")
        return {}
    labels = data.labels if (data.labels >= 0).any() else None
    metrics = batch_mixing_metrics(coords, codes, labels, k=k, seed=seed, max_points=max_points)
    if features is not None:
        on_features = batch_mixing_metrics(features, codes, labels, k=k, seed=seed, max_points=max_points)
        metrics.update({f"features_{key}": value for key, value in on_features.items()})
    return metrics


def pixel_tsne_metrics(data: ImageArrays, k: int, seed: int, max_images: int | None = None) -> dict[str, float]:
    """kNN accuracy and silhouette of a t-SNE of the raw pixels, prefixed ``pixel_tsne_``.

    t-SNE grows faster than linearly and needs every image in memory: with ``max_images`` it
    embeds a class-stratified subset of that many images (``pixel_tsne_n_images`` says how many).
    """
    rows = stratified_rows(data.labels, max_images if max_images is not None else len(data), seed)
    if len(rows) < len(data):
        log.info(f"pixel t-SNE of a class-stratified {len(rows)} of the {len(data)} images (eval.tsne_max_images)")
    coords = pixel_tsne(gather(data.images, rows), seed=seed, intensity=data.scale())
    found = map_metrics(coords, data.labels[rows], k, seed, class_names=data.class_names)
    found["n_images"] = len(rows)
    return {f"pixel_tsne_{key}": value for key, value in found.items()}
