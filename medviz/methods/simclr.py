"""SimCLR (Chen et al. 2020), the paper's 512-D baseline: same backbone and head shape as
t-SimCNE's stage 1, cosine InfoNCE with τ = 0.5, 1000 epochs (paper §4, Baselines)."""

from __future__ import annotations

import torch
from torch import nn

from medviz.augment import BatchAugment
from medviz.distributed import gather_with_grad
from medviz.losses import cosine_infonce
from medviz.methods.base import ContrastiveMethod
from medviz.models.heads import MLPHead
from medviz.schedules import Stage


class SimCLR(ContrastiveMethod):
    """SimCLR trained with SGD as t-SimCNE's stage 1; the map comes from t-SNE of its features.

    Args:
        backbone, augment, lr, momentum, weight_decay, grad_clip: see ContrastiveMethod.
        epochs: training length (paper: 1000).
        warmup_epochs: linear lr warmup (as t-SimCNE stage 1: 10).
        temperature: τ of the cosine InfoNCE (paper eq. 1: 0.5).
        hidden_dim, out_dim: head Linear(D, hidden) -> ReLU -> Linear(hidden, out) (1024, 128).
    """

    produces_map = False

    def __init__(
        self,
        backbone: nn.Module,
        augment: BatchAugment,
        lr: float,
        epochs: int = 1000,
        warmup_epochs: int = 10,
        temperature: float = 0.5,
        hidden_dim: int = 1024,
        out_dim: int = 128,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        grad_clip: float | None = None,
    ) -> None:
        super().__init__(backbone, augment, lr, momentum, weight_decay, grad_clip)
        self.head = MLPHead(backbone.out_dim, hidden_dim, out_dim)
        self.temperature = temperature
        self.stage = Stage("simclr", epochs, 1.0, warmup_epochs, "high", "all")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed images (B, 3, H, W) -> head output (B, out_dim)."""
        return self.head(self.backbone(x))

    def compute_loss(self, view_a: torch.Tensor, view_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss of two views (B, 3, H, W); under DDP the negatives come from the global batch."""
        z_a, z_b = self(torch.cat([view_a, view_b], dim=0)).chunk(2, dim=0)
        return cosine_infonce(gather_with_grad(z_a), gather_with_grad(z_b), self.temperature)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        view_a, view_b, _ = batch
        parts = self.compute_loss(view_a, view_b)
        self.log_step(parts, batch_size=view_a.shape[0])
        return parts["loss"]
