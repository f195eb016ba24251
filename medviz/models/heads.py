"""Projection heads: t-SimCNE's stage-aware head and plain MLP heads (SimCLR, BYOL).

t-SimCNE's head is Linear(D, 1024) -> ReLU -> Linear(1024, 128) in stage 1; the last layer is
replaced by a new Linear(1024, 2) for stages 2-3 (no BatchNorm in the head; docs/reproducing.md).
Both output layers are created at construction and the method says, on each call, which output
its current stage uses (the stage index is the one saved flag, kept by the method). Nothing is
ever created mid-training, so:

* the optimiser built at the start of each stage always sees the layer that stage trains;
* DDP wraps every parameter at start-up and no layer needs synchronising later;
* a checkpoint from any stage loads into a freshly built model: same keys, same shapes.
"""

from __future__ import annotations

import torch
from torch import nn


class FadingDimensions(nn.Module):
    """Dimension annealing's output: (B, D) -> (B, D) with dimensions 3..D scaled by ``scale``.

    ``scale`` goes from 1 to 0 over the annealing window (set by the method each step); the map
    is read from the first two dimensions, which are never scaled.
    """

    def __init__(self) -> None:
        super().__init__()
        self.scale = 1.0

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        keep = torch.ones(out.shape[1], device=out.device, dtype=out.dtype)
        keep[2:] = self.scale
        return out * keep


class TSimCNEHead(nn.Module):
    """Maps backbone features (B, D) to the output of a stage: ``high`` (B, 128), ``2d`` (B, 2) or
    ``anneal`` (B, 128) with dimensions 3..128 fading out."""

    def __init__(self, in_dim: int, hidden_dim: int = 1024, high_dim: int = 128, out_dim: int = 2) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True))
        self.to_high = nn.Linear(hidden_dim, high_dim)
        self.to_2d = nn.Linear(hidden_dim, out_dim)
        # Reference initialisation of the new 2-D layer: weights ~ N(0, 1) (the reference code).
        nn.init.normal_(self.to_2d.weight, mean=0.0, std=1.0)
        self.fading = FadingDimensions()

    def output_layer(self, output: str) -> nn.Module:
        """The layer that produces ``output`` (``anneal`` trains the 128-D layer)."""
        return self.to_2d if output == "2d" else self.to_high

    def forward(self, features: torch.Tensor, output: str) -> torch.Tensor:
        out = self.output_layer(output)(self.hidden(features))
        return self.fading(out) if output == "anneal" else out


class MLPHead(nn.Module):
    """Linear(in, hidden) -> [BatchNorm] -> ReLU -> Linear(hidden, out): (B, in) -> (B, out).

    SimCLR uses it without BatchNorm (the same shape as t-SimCNE's stage-1 head); BYOL's projector
    and predictor use it with BatchNorm (Grill et al. 2020).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, batchnorm: bool = False) -> None:
        super().__init__()
        norm: list[nn.Module] = [nn.BatchNorm1d(hidden_dim)] if batchnorm else []
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), *norm, nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
