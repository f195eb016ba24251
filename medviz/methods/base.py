"""What every method shares: on-device augmentation, SGD with warmup-cosine, embedding output."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from medviz.augment import BatchAugment
from medviz.schedules import Stage


class ContrastiveMethod(L.LightningModule):
    """Base for contrastive methods trained on two augmented views of each image.

    Batches arrive from :class:`~medviz.data.ArrayDataModule` as ``(uint8 images, indices)``
    and are augmented here, on the model's device, after the transfer (docs/reproducing.md, "Augmentations").

    Args:
        backbone: feature extractor with ``out_dim``.
        augment: random views and the plain preprocessing of the dataset.
        lr: peak learning rate (the paper: 0.03 · b / 256).
        momentum, weight_decay: SGD settings (ref: 0.9, 5e-4).
        grad_clip: clip the gradient norm to this value; None (the paper) disables it.
    """

    def __init__(
        self,
        backbone: nn.Module,
        augment: BatchAugment,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        grad_clip: float | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.augment = augment
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip

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
        images, indices = batch
        if self.trainer is not None and self.trainer.training:
            views = (self.augment(images), self.augment(images))
            if self.channels_last:
                views = tuple(v.contiguous(memory_format=torch.channels_last) for v in views)
            return *views, indices
        return self.augment.plain(images), indices

    #: True when the network's output is the 2-D map (t-SimCNE); False when a map is made from
    #: the backbone features afterwards (SimCLR, BYOL: t-SNE of the 512-D features).
    produces_map: bool = True

    @property
    def has_map(self) -> bool:
        """Whether ``embed`` gives a 2-D map right now (for snapshots during training)."""
        return self.produces_map

    def make_sgd(self, params: list[nn.Parameter], lr: float) -> torch.optim.SGD:
        return torch.optim.SGD(params, lr=lr, momentum=self.momentum, weight_decay=self.weight_decay)

    def sgd_with_warmup_cosine(self, stage: Stage) -> dict:
        """SGD over the trainable parameters with ``stage``'s warmup-cosine lr, stepped per epoch."""
        params = [p for p in self.parameters() if p.requires_grad]
        optimiser = self.make_sgd(params, self.lr * stage.lr_scale)
        scheduler = LambdaLR(optimiser, stage.lr_factor)
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        if self.grad_clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")

    def log_step(self, parts: dict[str, torch.Tensor], batch_size: int) -> None:
        """Log the loss and its parts every step, and the current learning rate."""
        for key, value in parts.items():
            self.log(f"train/{key}", value, prog_bar=key == "loss", batch_size=batch_size)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=batch_size)

    #: One warmup-cosine stage for single-stage methods (SimCLR, BYOL); t-SimCNE replaces it.
    stage: Stage

    @property
    def total_epochs(self) -> int:
        """Epochs the whole training runs for (the Trainer's max_epochs)."""
        return self.stage.epochs

    def configure_optimizers(self):
        return self.sgd_with_warmup_cosine(self.stage)

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """Backbone features (B, D) of preprocessed images, with their dataset indices."""
        x, indices = batch
        return {"features": self.backbone(x).float(), "index": indices}

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, D) of preprocessed images (B, 3, H, W)."""
        return self.backbone(x)
