"""Lightning callbacks: t-SimCNE's stage schedule and map snapshots during training."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from medviz.evaluation import knn_accuracy, silhouette_score
from medviz.plots import plot_map
from medviz.tracking import log_map_image


class StageSchedule(L.Callback):
    """Moves a staged module (``schedule``, ``current_stage``, ``enter_stage``) through its stages.

    At the start of each epoch it looks up the epoch's stage; on a change it switches the module
    and asks the strategy to rebuild optimisers and lr schedulers, so each stage starts with a
    fresh optimiser over exactly the parameters it trains. Every process runs the same switch at
    the same epoch, so DDP replicas stay identical.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        target = pl_module.schedule.stage_at(trainer.current_epoch)
        if target == pl_module.current_stage:
            return
        pl_module.enter_stage(target)
        trainer.strategy.setup_optimizers(trainer)
        stage = pl_module.stage
        rank_zero_info(
            f"[medviz] epoch {trainer.current_epoch}: entering {stage.name} "
            f"({stage.epochs} epochs, lr {pl_module.lr * stage.lr_scale:.3g}, "
            f"trains {stage.trains})"
        )


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
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: np.ndarray,
        every_n_epochs: int,
        k: int = 15,
        class_names: Sequence[str] = (),
        image_dir: Path | None = None,
    ) -> None:
        self.images = images
        self.labels = np.asarray(labels)
        self.every_n_epochs = every_n_epochs
        self.k = k
        self.class_names = tuple(class_names)
        self.image_dir = image_dir
        self._start = time.perf_counter()
        self._trained_seconds = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._trained_seconds += time.perf_counter() - self._start  # snapshots not counted
        epoch = trainer.current_epoch + 1
        stage_end = epoch in self.stage_ends(pl_module) or epoch == trainer.max_epochs
        if epoch % self.every_n_epochs and not stage_end:
            return
        if not getattr(pl_module, "has_map", True):  # e.g. t-SimCNE's 128-D stage 1
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

    @staticmethod
    def stage_ends(pl_module: L.LightningModule) -> set[int]:
        """Epoch counts (1-based) at which a stage of a staged module ends; empty for single-stage methods."""
        schedule = getattr(pl_module, "schedule", None)
        if schedule is None:
            return set()
        return set(np.cumsum([stage.epochs for stage in schedule.stages]).tolist())

    def save_image(
        self, trainer: L.Trainer, pl_module: L.LightningModule, coords: np.ndarray, metrics: dict, epoch: int
    ) -> None:
        stage = getattr(pl_module, "stage", None)
        caption = (
            f"{stage.name + ', ' if stage is not None else ''}epoch {epoch}: "
            f"kNN {metrics['map/knn_accuracy']:.3f}, silhouette {metrics['map/silhouette']:.3f} "
            f"({len(self.labels)} images)"
        )
        self.image_dir.mkdir(parents=True, exist_ok=True)
        path = plot_map(coords, self.labels, self.class_names, self.image_dir / f"epoch{epoch:04d}.png", title=caption)
        log_map_image(trainer.loggers, "map/image", path, caption, step=trainer.global_step)

    @torch.no_grad()
    def embed(self, pl_module: L.LightningModule) -> np.ndarray:
        was_training = pl_module.training
        pl_module.eval()
        try:
            chunks = [
                pl_module.embed(pl_module.augment.plain(batch.to(pl_module.device))).float().cpu()
                for batch in self.images.split(1024)
            ]
        finally:
            pl_module.train(was_training)
        return torch.cat(chunks).numpy()
