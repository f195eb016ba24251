"""Map snapshots during training: metrics and pictures of the map as it grows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch

from medviz.evaluation import knn_accuracy, silhouette_score
from medviz.maps.plots import plot_map
from medviz.methods.base import ContrastiveMethod
from medviz.training.tracking import log_map_image


class MapSnapshot(L.Callback):
    """Every few epochs, embed a fixed subset without augmentation and log the map's metrics.

    Logs ``map/knn_accuracy`` and ``map/silhouette`` (paper §4 metrics on the subset),
    ``map/spread`` (std of the coordinates: does the map grow or stay a blob?) and
    ``time/train_minutes``, so curves of map quality against training time can be compared
    across runs and augmentation sets. At the end of each stage that has a 2-D map (and of
    training) it also draws the subset's map to ``<image_dir>/epochNNNN.png`` and logs it as an
    image (W&B), so the map's growth can be followed stage by stage.

    Args:
        images: uint8 (M, 3, H, W), a fixed subset of the dataset.
        labels: (M,) class labels of the subset (at least 2 classes).
        every_n_epochs: how often; stage ends and the last epoch are always included.
        k: kNN neighbours.
        class_names: names for the map's legend.
        image_dir: where the stage-end maps go; None draws none.
        indices: (M,) the subset's dataset indices (each image's per-batch intensity range); None: 0..M-1.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: np.ndarray,
        every_n_epochs: int,
        k: int = 15,
        class_names: Sequence[str] = (),
        image_dir: Path | None = None,
        indices: np.ndarray | None = None,
    ) -> None:
        self.images = images
        self.indices = torch.as_tensor(np.arange(len(images)) if indices is None else indices, dtype=torch.long)
        self.labels = np.asarray(labels)
        self.every_n_epochs = every_n_epochs
        self.k = k
        self.class_names = tuple(class_names)
        self.image_dir = image_dir
        self._start = time.perf_counter()
        self._trained_seconds = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: ContrastiveMethod) -> None:
        self._trained_seconds += time.perf_counter() - self._start  # snapshots not counted
        epoch = trainer.current_epoch + 1
        stage_end = epoch in pl_module.schedule.stage_ends or epoch == trainer.max_epochs
        if epoch % self.every_n_epochs and not stage_end:
            return
        if not pl_module.has_map:  # e.g. t-SimCNE's 128-D stage 1
            return
        coords = self.embed(pl_module)
        metrics = {
            "map/spread": float(coords.std(axis=0).mean()),
            "time/train_minutes": self._trained_seconds / 60,
        }
        metrics.update(
            {
                "map/knn_accuracy": knn_accuracy(coords, self.labels, k=self.k),
                "map/silhouette": silhouette_score(coords, self.labels, device="cpu"),
            }
        )
        for key, value in metrics.items():
            pl_module.log(key, value, prog_bar=key == "map/knn_accuracy", rank_zero_only=True)
        if stage_end and self.image_dir is not None and trainer.is_global_zero:
            self.save_image(trainer, pl_module, coords, metrics, epoch)

    def save_image(
        self, trainer: L.Trainer, pl_module: ContrastiveMethod, coords: np.ndarray, metrics: dict, epoch: int
    ) -> None:
        caption = (
            f"{pl_module.stage.name}, epoch {epoch}: "
            f"kNN {metrics['map/knn_accuracy']:.3f}, silhouette {metrics['map/silhouette']:.3f} "
            f"({len(self.labels)} images)"
        )
        self.image_dir.mkdir(parents=True, exist_ok=True)
        path = plot_map(coords, self.labels, self.class_names, self.image_dir / f"epoch{epoch:04d}.png", title=caption)
        log_map_image(trainer.loggers, "map/image", path, caption, step=trainer.global_step)

    @torch.no_grad()
    def embed(self, pl_module: ContrastiveMethod) -> np.ndarray:
        was_training = pl_module.training
        pl_module.eval()
        try:
            chunks = [
                pl_module.embed(batch.to(pl_module.device), pl_module.batch_rows_of(index.to(pl_module.device)))
                .float()
                .cpu()
                for batch, index in zip(self.images.split(1024), self.indices.split(1024), strict=True)
            ]
        finally:
            pl_module.train(was_training)
        return torch.cat(chunks).numpy()
