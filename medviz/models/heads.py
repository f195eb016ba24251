"""Projection heads: t-SimCNE's stage-aware head and plain MLP heads (SimCLR, BYOL).

t-SimCNE's head holds both output layers from the start.

Linear(D, 1024) -> ReLU -> Linear(1024, 128) in stage 1; the last layer is replaced by a new
Linear(1024, 2) for stages 2-3 (no BatchNorm in the head; docs/reproducing.md). Both output layers are
created at construction, and a ``stage`` buffer (saved in every checkpoint) says which one is
used. Nothing is ever created mid-training, so:

* the optimiser built at the start of each stage always sees the layer that stage trains;
* DDP wraps every parameter at start-up and no layer needs synchronising later;
* a checkpoint from any stage loads into a freshly built model: same keys, same shapes, and the
  stage comes back with the weights.
"""

from __future__ import annotations

import torch
from torch import nn


class TSimCNEHead(nn.Module):
    """Maps backbone features (B, D) to the output (B, 128) in stage 1 or (B, 2) afterwards."""

    def __init__(self, in_dim: int, hidden_dim: int = 1024, high_dim: int = 128, out_dim: int = 2) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True))
        self.to_high = nn.Linear(hidden_dim, high_dim)
        self.to_2d = nn.Linear(hidden_dim, out_dim)
        # Reference initialisation of the new 2-D layer: weights ~ N(0, 1) (the reference code).
        nn.init.normal_(self.to_2d.weight, mean=0.0, std=1.0)
        # The buffer travels in checkpoints; the Python copy is what forward reads, because
        # reading a GPU buffer in every step would make the host wait for the device.
        self.register_buffer("use_2d", torch.tensor(False))
        self.output_2d = False
        self.register_load_state_dict_post_hook(lambda module, _: module.set_output_2d(bool(module.use_2d)))

    def set_output_2d(self, use_2d: bool) -> None:
        self.output_2d = bool(use_2d)
        self.use_2d.fill_(self.output_2d)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden(features)
        return self.to_2d(hidden) if self.output_2d else self.to_high(hidden)


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
