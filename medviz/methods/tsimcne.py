"""t-SimCNE (Böhm et al. 2023): a contrastive network whose output *is* the 2-D map.

Training follows a :class:`~medviz.methods.stages.Schedule` -- the paper's three stages by default
(128-D pre-training, then a new 2-D output layer alone, then everything in 2-D) or dimension
annealing. The method knows which parameters and which output each stage uses; the head
produces that output.
"""

from __future__ import annotations

import torch
from torch import nn

from medviz.augment import BatchAugment
from medviz.errors import ConfigError
from medviz.methods.base import ContrastiveMethod, OptimiserFactory
from medviz.methods.losses import cauchy_infonce
from medviz.methods.stages import MAP_OUTPUTS, Schedule, Stage
from medviz.models.heads import TSimCNEHead
from medviz.models.preprocess import Preprocess


class TSimCNE(ContrastiveMethod):
    """t-SimCNE with a stage-aware head and the Cauchy-kernel InfoNCE loss (paper eq. 2).

    Args:
        backbone, augment, preprocess, schedule, optimizer, lr, grad_clip: see ContrastiveMethod.
        hidden_dim: width of the head's hidden layer (ref: 1024).
        high_dim: output width of stage 1 (ref: 128).
    """

    outputs = frozenset({"high", "2d", "anneal"})
    trains = frozenset({"all", "output"})

    def __init__(
        self,
        backbone: nn.Module,
        augment: BatchAugment,
        preprocess: Preprocess,
        schedule: Schedule,
        optimizer: OptimiserFactory,
        lr: float,
        grad_clip: float | None = None,
        hidden_dim: int = 1024,
        high_dim: int = 128,
    ) -> None:
        super().__init__(backbone, augment, preprocess, schedule, optimizer, lr, grad_clip)
        if schedule.stages[-1].output not in MAP_OUTPUTS:
            raise ConfigError(
                f"t-SimCNE's schedule must end in a stage with a 2-D output, but its last stage "
                f"'{schedule.stages[-1].name}' trains the {schedule.stages[-1].output} output: there would be no map. "
                "Use schedule=stages or schedule=anneal"
            )
        self.head = TSimCNEHead(backbone.out_dim, hidden_dim, high_dim, out_dim=2)

    # ------------------------------------------------------------------ stages
    def set_trainable(self, stage: Stage) -> None:
        """Stage 2 freezes everything but the new 2-D layer. BatchNorm layers stay in train mode
        while frozen, so their running statistics keep updating -- the reference behaviour."""
        for param in self.parameters():
            param.requires_grad_(stage.trains == "all")
        if stage.trains == "output":
            self.head.to_2d.requires_grad_(True)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the current stage optimises (its output layer, never the unused one)."""
        used = self.head.output_layer(self.stage.output)
        unused = self.head.to_high if used is self.head.to_2d else self.head.to_2d
        skip = {id(p) for p in unused.parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in skip]

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self.stage.output == "anneal":
            epochs = self.current_epoch + batch_idx / max(1, self.trainer.num_training_batches)
            self.head.fading.scale = self.schedule.dim_scale(epochs / max(1, self.schedule.total_epochs))

    # ------------------------------------------------------------------ forward and loss
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, H, W) -> the current stage's output (B, 128) or (B, 2)."""
        return self.head(self.backbone(x), self.stage.output)

    def loss(self, z_a: torch.Tensor, z_b: torch.Tensor) -> dict[str, torch.Tensor]:
        return cauchy_infonce(z_a, z_b)

    def log_step(self, parts: dict[str, torch.Tensor], batch_size: int) -> None:
        super().log_step(parts, batch_size)
        self.log("train/stage", float(self.current_stage + 1), prog_bar=True, batch_size=batch_size)

    def high_dim_output(self, features: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, D) -> the 128-D output of stage 1 (B, 128) (paper §3: the SimCLR-like
        stage the 2-D map is fine-tuned from); batch metrics and export report it beside the map."""
        return self.head(features, "high")

    def map_of_features(self, features: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, D) -> map coordinates (B, 2): the 2-D output, or the first two
        dimensions of the annealed one."""
        return self.head(features, self.stage.output)[:, :2]
