"""BYOL (Grill et al. 2020), the paper's second 512-D baseline: an online network with a
predictor learns to match an EMA target network; no negatives (paper §4, Baselines)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from medviz.augment import BatchAugment
from medviz.methods.base import ContrastiveMethod, OptimiserFactory
from medviz.methods.losses import byol_loss
from medviz.methods.stages import Schedule
from medviz.models.heads import MLPHead
from medviz.models.preprocess import Preprocess


class BYOL(ContrastiveMethod):
    """BYOL with projector/predictor MLPs (BatchNorm) and a cosine EMA schedule τ: 0.99 -> 1.

    Args:
        backbone, augment, preprocess, schedule, optimizer, lr, grad_clip: see ContrastiveMethod
            (the schedule: one 128-D stage, :func:`~medviz.methods.stages.single_stage`).
        proj_hidden, proj_dim, pred_hidden: MLP sizes (BYOL's 4096, 256, 4096).
        tau_base: EMA coefficient at the start; it rises to 1 on a cosine over training steps.
        batchnorm: BatchNorm in the MLPs (BYOL's design; off only to test exact DDP equivalence).
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
        proj_hidden: int = 4096,
        proj_dim: int = 256,
        pred_hidden: int = 4096,
        tau_base: float = 0.99,
        batchnorm: bool = True,
    ) -> None:
        super().__init__(backbone, augment, preprocess, schedule, optimizer, lr, grad_clip)
        self.projector = MLPHead(backbone.out_dim, proj_hidden, proj_dim, batchnorm)
        self.predictor = MLPHead(proj_dim, pred_hidden, proj_dim, batchnorm)
        # The target is a slow copy; it is saved in checkpoints, so a resumed run keeps it.
        self.target_backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.tau_base = tau_base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, H, W) -> online predictions (B, proj_dim)."""
        return self.predictor(self.projector(self.backbone(x)))

    def tau(self, step: int, total_steps: int) -> float:
        """EMA coefficient: tau_base at step 0, 1 at the last step, cosine in between."""
        progress = min(1.0, step / max(1, total_steps))
        return 1 - (1 - self.tau_base) * (math.cos(math.pi * progress) + 1) / 2

    def compute_loss(self, view_a: torch.Tensor, view_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Symmetric BYOL loss of two views (B, 3, H, W). No negatives, so nothing is gathered:
        DDP's gradient averaging over equal shards already gives the global-batch gradient."""
        views = torch.cat([view_a, view_b], dim=0)
        p_a, p_b = self(views).chunk(2, dim=0)
        with torch.no_grad():
            t_a, t_b = self.target_projector(self.target_backbone(views)).chunk(2, dim=0)
        return byol_loss(p_a, t_b, p_b, t_a)

    @torch.no_grad()
    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        tau = self.tau(self.global_step, int(self.trainer.estimated_stepping_batches))
        pairs = [(self.target_backbone, self.backbone), (self.target_projector, self.projector)]
        for target, online in pairs:
            for t, o in zip(target.parameters(), online.parameters(), strict=True):
                t.lerp_(o, 1 - tau)  # t = tau * t + (1 - tau) * o
        self.log("train/tau", tau, batch_size=batch[0].shape[0])
