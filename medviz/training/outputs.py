"""What a finished run leaves in its folder: embedding.npz, metrics.json, map.png."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, open_dict

from medviz.data.arrays import ImageArrays
from medviz.data.row_reader import gather
from medviz.data.subset import stratified_rows
from medviz.evaluation import knn_accuracy, silhouette_score
from medviz.evaluation.knn import knn_recall_per_class
from medviz.evaluation.tsne import pixel_tsne
from medviz.maps.plots import plot_map

log = logging.getLogger("medviz")


def saved_config(run_dir: Path) -> Path | None:
    """The run's resolved config: ``config.yaml``, or the ``config-resumed.yaml`` of a resumed run; None if neither."""
    for name in ("config.yaml", "config-resumed.yaml"):
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def upgrade_config(cfg: DictConfig) -> DictConfig:
    """A run config saved before every method took one optimiser config and one schedule, in today's keys.

    Such configs kept SGD's settings in ``method.module`` (and SimCLR's/BYOL's length as
    ``method.module.epochs``); the schedule builders lived in ``medviz.schedules``.
    """
    with open_dict(cfg):
        method = cfg.method
        if "optimizer" not in method:
            module = method.module
            momentum, decay = module.pop("momentum", 0.9), module.pop("weight_decay", 5e-4)
            method.optimizer = {
                "_target_": "torch.optim.SGD",
                "_partial_": True,
                "momentum": momentum,
                "weight_decay": decay,
            }
            method.grad_clip = module.pop("grad_clip", None)
            module.pop("schedule", None)
            if "epochs" in module:
                epochs, warmup = module.pop("epochs"), module.pop("warmup_epochs", 10)
                cfg.schedule = {
                    "_target_": "medviz.methods.stages.single_stage",
                    "epochs": epochs,
                    "warmup_epochs": warmup,
                }
        cfg.schedule._target_ = str(cfg.schedule._target_).replace("medviz.schedules.", "medviz.methods.stages.")
    return cfg


def save_embedding(run_dir: Path, coords: np.ndarray, data: ImageArrays, indices: np.ndarray) -> Path:
    """``embedding.npz``: ``embedding`` float32 (N, 2), ``labels`` int64 (N,), ``index`` int64 (N,),
    ``class_names`` (C,) -- rows in dataset order, so ``index[i] == i``."""
    path = run_dir / "embedding.npz"
    np.savez(
        path,
        embedding=coords.astype(np.float32),
        labels=data.labels,
        index=indices.astype(np.int64),
        class_names=np.array(data.class_names),
    )
    return path


def save_features(run_dir: Path, features: np.ndarray, data: ImageArrays, indices: np.ndarray) -> Path:
    """``features.npz``: ``features`` float32 (N, D) backbone features, ``labels``, ``index`` -- dataset order."""
    path = run_dir / "features.npz"
    np.savez(path, features=features.astype(np.float32), labels=data.labels, index=indices.astype(np.int64))
    return path


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


def write_metrics(run_dir: Path, metrics: dict) -> Path:
    path = run_dir / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)  # atomic: a crash never leaves a half-written metrics.json
    return path


def save_map_figure(run_dir: Path, coords: np.ndarray, data: ImageArrays, label: str, metrics: dict) -> Path:
    parts = [label]
    if "knn_accuracy" in metrics:
        parts.append(f"kNN {metrics['knn_accuracy']:.3f}, silhouette {metrics['silhouette']:.3f}")
    return plot_map(coords, data.labels, data.class_names, run_dir / "map.png", title="\n".join(parts))
