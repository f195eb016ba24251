"""t-SimCNE (Böhm et al. 2023): a contrastive network whose output *is* the 2-D map.

Training follows a :class:`~medviz.schedules.Schedule` -- the paper's three stages by default
(128-D pre-training, then a new 2-D output layer alone, then everything in 2-D) or dimension
annealing. :class:`~medviz.callbacks.StageSchedule` moves the module from stage to stage; the
module itself knows which parameters and which output each stage uses.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from medviz.augment import BatchAugment
from medviz.distributed import gather_with_grad
from medviz.losses import cauchy_infonce
from medviz.methods.base import ContrastiveMethod
from medviz.models.heads import TSimCNEHead
from medviz.schedules import Schedule, Stage


class TSimCNE(ContrastiveMethod):
    """t-SimCNE with a stage-aware head.

    Args:
        backbone, augment, lr, momentum, weight_decay, grad_clip: see ContrastiveMethod.
        schedule: the stages to train through.
        hidden_dim: width of the head's hidden layer (ref: 1024).
        high_dim: output width of stage 1 (ref: 128).
    """

    def __init__(
        self,
        backbone: nn.Module,
        augment: BatchAugment,
        schedule: Schedule,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        grad_clip: float | None = None,
        hidden_dim: int = 1024,
        high_dim: int = 128,
    ) -> None:
        super().__init__(backbone, augment, lr, momentum, weight_decay, grad_clip)
        self.schedule = schedule
        self.head = TSimCNEHead(backbone.out_dim, hidden_dim, high_dim, out_dim=2)
        # Saved in checkpoints, so a restored model knows its stage before anything runs. The
        # Python copy is what the training step reads: reading the buffer on a GPU would make
        # the host wait for the device in every step.
        self.register_buffer("stage_index", torch.tensor(0))
        self.register_buffer("dim_scale", torch.tensor(1.0))
        self.current_stage = 0
        self.enter_stage(0)
        self.register_load_state_dict_post_hook(lambda module, _: module.enter_stage(int(module.stage_index)))

    # ------------------------------------------------------------------ stages
    @property
    def total_epochs(self) -> int:
        return self.schedule.total_epochs

    @property
    def stage(self) -> Stage:
        return self.schedule.stages[self.current_stage]

    def enter_stage(self, index: int) -> None:
        """Switch output layer and trainable parameters to those of stage ``index``.

        Stage 2 freezes everything but the new 2-D layer. BatchNorm layers stay in train mode
        while frozen, so their running statistics keep updating -- the reference behaviour.
        """
        self.current_stage = int(index)
        self.stage_index.fill_(self.current_stage)
        stage = self.stage
        self.head.set_output_2d(stage.output == "2d")
        for param in self.parameters():
            param.requires_grad_(stage.trains == "all")
        if stage.trains == "output":
            for param in self.head.to_2d.parameters():
                param.requires_grad_(True)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the current stage optimises (its output layer, never the unused one)."""
        unused = self.head.to_high if self.stage.output == "2d" else self.head.to_2d
        skip = {id(p) for p in unused.parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in skip]

    def configure_optimizers(self):
        """A fresh SGD and warmup-cosine schedule for the current stage (called at each switch)."""
        self.enter_stage(self.current_stage)  # requires_grad is not saved in checkpoints
        stage = self.stage
        optimiser = self.make_sgd(self.trainable_parameters(), self.lr * stage.lr_scale)
        scheduler = LambdaLR(optimiser, stage.lr_factor)
        return {
            "optimizer": optimiser,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed images (B, 3, H, W) -> training output (B, 128) or (B, 2)."""
        out = self.head(self.backbone(x))
        if self.stage.output == "anneal":
            keep = torch.ones(out.shape[1], device=out.device, dtype=out.dtype)
            keep[2:] = self.dim_scale.to(out.dtype)
            out = out * keep
        return out

    @property
    def has_map(self) -> bool:
        """Whether the current output is a 2-D map (not during 128-D pre-training)."""
        return self.stage.output != "high"

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed images (B, 3, H, W) -> map coordinates (B, 2)."""
        out = self(x)
        return out[:, :2] if self.stage.output == "anneal" else out

    def compute_loss(self, view_a: torch.Tensor, view_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss of two views (B, 3, H, W); under DDP the negatives come from the global batch."""
        z_a, z_b = self(torch.cat([view_a, view_b], dim=0)).chunk(2, dim=0)
        return cauchy_infonce(gather_with_grad(z_a), gather_with_grad(z_b))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        view_a, view_b, _ = batch
        if self.stage.output == "anneal":
            progress = (self.current_epoch + batch_idx / max(1, self.trainer.num_training_batches)) / max(
                1, self.schedule.total_epochs
            )
            self.dim_scale.fill_(self.schedule.dim_scale(progress))
        parts = self.compute_loss(view_a, view_b)
        self.log_step(parts, batch_size=view_a.shape[0])
        self.log("train/stage", float(self.current_stage + 1), prog_bar=True, batch_size=view_a.shape[0])
        return parts["loss"]

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        x, indices = batch
        features = self.backbone(x)
        coords = self.head(features)
        if self.stage.output == "anneal":
            coords = coords[:, :2]
        return {"embedding": coords.float(), "features": features.float(), "index": indices}
