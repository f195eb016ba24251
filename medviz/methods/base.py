"""What every method shares: the training step, the optimiser per stage, preprocessing and embedding.

A method is its head, its loss and its extras (BYOL's target network); everything else lives here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from medviz.augment import BatchAugment
from medviz.errors import ConfigError
from medviz.methods.distributed import gather_with_grad
from medviz.methods.stages import MAP_OUTPUTS, Schedule, Stage
from medviz.models.preprocess import Preprocess

#: Builds an optimiser from parameters and a learning rate (a ``_partial_`` of e.g. torch.optim.SGD).
OptimiserFactory = Callable[..., torch.optim.Optimizer]


class ContrastiveMethod(L.LightningModule):
    """Base for contrastive methods trained on two augmented views of each image.

    Batches arrive from :class:`~medviz.data.datamodule.ArrayDataModule` as ``(stored images, indices)``; in
    training they are augmented here, on the model's device, after the transfer
    (docs/reproducing.md, "Augmentations"), and normalised by the model's own preprocessing.

    Args:
        backbone: feature extractor with ``out_dim``.
        augment: random views of batches in [0, 1], float in [0, 1].
        preprocess: stored images -> [0, 1] -> normalised float, with the dataset's mapping and statistics.
        schedule: the stages to train through (:mod:`medviz.methods.stages`).
        optimizer: ``optimizer(params, lr=...)`` builds each stage's optimiser (ref: SGD,
            momentum 0.9, weight decay 5e-4).
        lr: peak learning rate (the paper: 0.03 · b / 256); each stage scales it.
        grad_clip: clip gradients at this value (by norm, or by value: ``grad_clip_algorithm``);
            None (the paper) disables it.
    """

    #: Stage outputs the method's network has; a schedule asking for another is refused.
    outputs: ClassVar[frozenset[str]] = frozenset({"high"})
    #: Stage ``trains`` values the method supports (``output``: only the output layer).
    trains: ClassVar[frozenset[str]] = frozenset({"all"})

    def __init__(
        self,
        backbone: nn.Module,
        augment: BatchAugment,
        preprocess: Preprocess,
        schedule: Schedule,
        optimizer: OptimiserFactory,
        lr: float,
        grad_clip: float | None = None,
    ) -> None:
        super().__init__()
        self.check_schedule(schedule)
        self.backbone = backbone
        self.augment = augment
        self.preprocess = preprocess
        self.schedule = schedule
        self.make_optimizer = optimizer
        self.lr = lr
        self.grad_clip = grad_clip
        # The one saved stage flag: a restored model knows its stage before anything runs. The
        # Python copy is what the training step reads: reading the buffer on a GPU would make
        # the host wait for the device in every step.
        self.register_buffer("stage_index", torch.tensor(0))
        # Each dataset image's row of the per-batch intensity ranges (dataset.normalise=batch): set by
        # the training pipeline and not saved, as it belongs to the data, not the network.
        self.register_buffer("image_batch_rows", torch.zeros(0, dtype=torch.long), persistent=False)
        self.current_stage = 0
        self.register_load_state_dict_post_hook(lambda module, _: module.enter_stage(int(module.stage_index)))

    # ------------------------------------------------------------------ stages
    @classmethod
    def check_schedule(cls, schedule: Schedule) -> None:
        """Refuse a schedule whose stages the method cannot train, saying what would work."""
        name = cls.__name__
        for stage in schedule.stages:
            if stage.output not in cls.outputs or stage.trains not in cls.trains:
                raise ConfigError(
                    f"{name} cannot train stage '{stage.name}' (output {stage.output}, trains {stage.trains}): "
                    f"its network has only the {'/'.join(sorted(cls.outputs))} output. Use a schedule it supports "
                    f"(SimCLR and BYOL: schedule=single; t-SimCNE: schedule=stages or schedule=anneal) and set "
                    "its length with schedule.epochs"
                )

    @property
    def stage(self) -> Stage:
        return self.schedule.stages[self.current_stage]

    @property
    def total_epochs(self) -> int:
        """Epochs the whole training runs for (the Trainer's max_epochs)."""
        return self.schedule.total_epochs

    @property
    def has_map(self) -> bool:
        """Whether the network's output is a 2-D map right now (t-SimCNE after stage 1; never SimCLR/BYOL)."""
        return self.stage.output in MAP_OUTPUTS

    def enter_stage(self, index: int) -> None:
        """Make stage ``index`` current: record it and set which parameters train."""
        self.current_stage = int(index)
        self.stage_index.fill_(self.current_stage)
        self.set_trainable(self.stage)

    def set_trainable(self, stage: Stage) -> None:
        """Set ``requires_grad`` for ``stage``; single-stage methods train what they built trainable."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the current stage optimises."""
        return [p for p in self.parameters() if p.requires_grad]

    def configure_callbacks(self) -> list[L.Callback]:
        return [StageSwitch()]

    def configure_optimizers(self):
        """A fresh optimiser and warmup-cosine lr for the current stage (rebuilt at each switch)."""
        self.enter_stage(self.current_stage)  # requires_grad is not saved in checkpoints
        stage = self.stage
        optimiser = self.make_optimizer(self.trainable_parameters(), lr=self.lr * stage.lr_scale)
        scheduler = LambdaLR(optimiser, stage.lr_factor)
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    #: How ``grad_clip`` clips: ``norm`` (the whole gradient's norm) or ``value`` (each element, as
    #: the reference's pip package does); set from ``method.grad_clip_algorithm``.
    grad_clip_algorithm: str = "norm"

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        if self.grad_clip is not None:
            self.clip_gradients(
                optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm=self.grad_clip_algorithm
            )

    def set_image_batch_rows(self, rows: np.ndarray | None) -> None:
        """Each dataset image's row of ``preprocess``'s per-batch ranges, int (N,), by dataset index; None: none."""
        values = torch.zeros(0, dtype=torch.long) if rows is None else torch.as_tensor(rows, dtype=torch.long)
        self.image_batch_rows = values.to(self.stage_index.device)

    def batch_rows_of(self, indices: torch.Tensor) -> torch.Tensor | None:
        """The per-batch range rows (B,) of dataset images ``indices`` (B,); None without per-batch ranges."""
        return self.image_batch_rows[indices] if self.image_batch_rows.numel() else None

    # ------------------------------------------------------------------ training
    def on_train_start(self) -> None:
        # Every DDP process starts from the same seed; offset it by rank so processes draw
        # different augmentations for their different images (still reproducible per seed).
        if self.trainer.world_size > 1:
            torch.manual_seed(torch.initial_seed() + self.trainer.global_rank)

    #: Feed the network channels-last tensors (set on GPUs: faster convolutions in bf16).
    channels_last: bool = False

    def on_fit_start(self) -> None:
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """In training, stored images (B, C, H, W) become two normalised views; otherwise they stay as stored."""
        if not self.trainer.training:
            return batch
        if len(batch) == 4:  # cross-batch positives: the second view is of each image's partner
            images, partners, indices, partner_indices = batch
            rows, partner_rows = self.batch_rows_of(indices), self.batch_rows_of(partner_indices)
            return *self.training_views(images, rows, partners, partner_rows), indices
        images, indices = batch
        return *self.training_views(images, self.batch_rows_of(indices)), indices

    def training_views(
        self,
        images: torch.Tensor,
        rows: torch.Tensor | None = None,
        partners: torch.Tensor | None = None,
        partner_rows: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stored images (B, C, H, W) -> two independently augmented, normalised views (B, C, H, W) each;
        ``rows`` (B,): each image's per-batch intensity range (``dataset.normalise=batch``). With
        ``partners`` (B, C, H, W) -- each image's cross-batch partner, or itself -- the second view is
        of the partner."""
        unit = self.preprocess.to_unit(images, rows)
        second = unit if partners is None else self.preprocess.to_unit(partners, partner_rows)
        view_a, view_b = (self.preprocess.normalise(self.augment(x)) for x in (unit, second))
        if self.channels_last:
            view_a, view_b = (v.contiguous(memory_format=torch.channels_last) for v in (view_a, view_b))
        return view_a, view_b

    def loss(self, z_a: torch.Tensor, z_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """The method's loss of the two views' outputs (B, D) each; ``loss`` plus any parts to log."""
        raise NotImplementedError

    def compute_loss(self, view_a: torch.Tensor, view_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss of two normalised views (B, C, H, W); under DDP the negatives come from the global batch."""
        z_a, z_b = self(torch.cat([view_a, view_b], dim=0)).chunk(2, dim=0)
        return self.loss(gather_with_grad(z_a), gather_with_grad(z_b))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        view_a, view_b, _ = batch
        parts = self.compute_loss(view_a, view_b)
        self.log_step(parts, batch_size=view_a.shape[0])
        return parts["loss"]

    def log_step(self, parts: dict[str, torch.Tensor], batch_size: int) -> None:
        """Log the loss and its parts every step, and the current learning rate."""
        for key, value in parts.items():
            self.log(f"train/{key}", value, prog_bar=key == "loss", batch_size=batch_size)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=batch_size)

    # ------------------------------------------------------------------ embedding
    def map_of_features(self, features: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, D) -> map coordinates (B, 2); only when :attr:`has_map`."""
        raise ConfigError(f"{type(self).__name__}'s network has no 2-D output: its map is a t-SNE of its features")

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """Stored images (B, C, H, W) -> backbone features (B, D), map coordinates (B, 2) when the
        network has a map, its high-dimensional output (B, 128) when it has one, and the images'
        dataset indices."""
        images, indices = batch
        features = self.backbone(self.preprocess(images, self.batch_rows_of(indices)))
        out = {"features": features.float(), "index": indices}
        if self.has_map:
            out["embedding"] = self.map_of_features(features).float()
        high = self.high_dim_output(features)
        if high is not None:
            out["high"] = high.float()
        return out

    def high_dim_output(self, features: torch.Tensor) -> torch.Tensor | None:
        """Backbone features (B, D) -> the method's high-dimensional output (t-SimCNE: the 128-D
        layer of stage 1, (B, 128)); None for methods without one."""
        return None

    def embed(self, images: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Stored images (B, C, H, W) (uint8, uint16 or float) -> map coordinates (B, 2), with no augmentation;
        ``rows`` (B,): each image's per-batch intensity range (``dataset.normalise=batch``)."""
        return self.map_of_features(self.backbone(self.preprocess(images, rows)))

    # ------------------------------------------------------------------ checkpoints
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        upgrade_state_dict(checkpoint["state_dict"])


def upgrade_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename, in place, the keys of checkpoints written before the model owned its preprocessing.

    Earlier checkpoints kept the normalisation in ``augment.mean/std``, a second stage flag in
    ``head.use_2d`` and the annealing weight in ``dim_scale`` (recomputed every step now); SimCLR
    and BYOL had no stage index; and all were 8-bit, mapped 0-255 to [0, 1].
    """
    for name in ("mean", "std"):
        if f"augment.{name}" in state:
            state[f"preprocess.{name}"] = state.pop(f"augment.{name}")
    if "preprocess.mean" in state and "preprocess.low" not in state:
        shape = state["preprocess.mean"].shape
        state["preprocess.low"] = torch.zeros(shape)
        state["preprocess.high"] = torch.full(shape, 255.0)
        state["preprocess.per_image"] = torch.tensor(False)
    for stale in ("head.use_2d", "dim_scale"):
        state.pop(stale, None)
    state.setdefault("stage_index", torch.tensor(0))
    if "preprocess.mean" in state and "preprocess.batch_low" not in state:  # before per-batch ranges
        channels = state["preprocess.mean"].shape[1]
        state["preprocess.batch_low"] = torch.zeros(0, channels)
        state["preprocess.batch_high"] = torch.zeros(0, channels)
        state["preprocess.batch_names_json"] = torch.zeros(0, dtype=torch.uint8)
    return state


class StageSwitch(L.Callback):
    """Moves a method through its schedule: at each epoch start, enter the epoch's stage.

    On a change it switches the method and asks the strategy to rebuild optimisers and lr
    schedulers, so each stage starts with a fresh optimiser over exactly the parameters it trains.
    Every process runs the same switch at the same epoch, so DDP replicas stay identical.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: ContrastiveMethod) -> None:
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
