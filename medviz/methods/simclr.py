"""SimCLR (Chen et al. 2020), the paper's 512-D baseline: same backbone and head shape as
t-SimCNE's stage 1, cosine InfoNCE with τ = 0.5, 1000 epochs (paper §4, Baselines)."""

from __future__ import annotations

import torch
from torch import nn

from medviz.augment import BatchAugment
from medviz.methods.base import ContrastiveMethod, OptimiserFactory
from medviz.methods.losses import cosine_infonce
from medviz.methods.stages import Schedule
from medviz.models.heads import MLPHead
from medviz.models.preprocess import Preprocess


class SimCLR(ContrastiveMethod):
    """SimCLR trained with SGD as t-SimCNE's stage 1; the map comes from t-SNE of its features.

    Args:
        backbone, augment, preprocess, schedule, optimizer, lr, grad_clip: see ContrastiveMethod
            (the schedule: one 128-D stage, :func:`~medviz.methods.stages.single_stage`).
        temperature: τ of the cosine InfoNCE (paper eq. 1: 0.5).
        hidden_dim, out_dim: head Linear(D, hidden) -> ReLU -> Linear(hidden, out) (1024, 128).
    """

    def __init__(
        self,
        backbone: nn.Module,
        augment: BatchAugment,
        preprocess: Preprocess,
        schedule: Schedule,
        optimizer: OptimiserFactory,
        lr: float,
        grad_clip: float | None = None,
        temperature: float = 0.5,
        hidden_dim: int = 1024,
        out_dim: int = 128,
    ) -> None:
        super().__init__(backbone, augment, preprocess, schedule, optimizer, lr, grad_clip)
        self.head = MLPHead(backbone.out_dim, hidden_dim, out_dim)
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, H, W) -> head output (B, out_dim)."""
        return self.head(self.backbone(x))

    def loss(self, z_a: torch.Tensor, z_b: torch.Tensor) -> dict[str, torch.Tensor]:
        return cosine_infonce(z_a, z_b, self.temperature)
