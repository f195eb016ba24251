"""Metrics of a 2-D map (paper §4: kNN accuracy, silhouette) and t-SNE baselines."""

from medviz.evaluation.knn import knn_accuracy
from medviz.evaluation.silhouette import silhouette_score

__all__ = ["knn_accuracy", "silhouette_score"]
