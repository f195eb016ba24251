"""Backbone registry: name -> a network mapping images (B, C, H, W) to features (B, D).

Every backbone takes ``in_channels``: its first layer reads as many channels as the data has
(3 for RGB, 2-6 for fluorescence); the run sets it from the data, never from a second setting.

* ``resnet18``: ResNet18 with t-SimCNE's small-image stem -- conv1 3x3, stride 1, padding 1 and
  no max-pool -- for 28-32 px images (Böhm et al. 2023; docs/reproducing.md). D = 512.
* ``resnet18_imagenet``: the unmodified ResNet18 stem, used for PCam's 96 px patches (paper §4).
* ``tinycnn``: a 3-block CNN for CPU demos and tests; it trains ~100x faster than ResNet18 on CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision.models import resnet18


class Backbone(nn.Module):
    """A feature extractor with a known output width ``out_dim``."""

    def __init__(self, body: nn.Module, out_dim: int) -> None:
        super().__init__()
        self.body = body
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, out_dim)."""
        return self.body(x)


def resnet18_small(in_channels: int = 3) -> Backbone:
    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return Backbone(net, 512)


def resnet18_imagenet(in_channels: int = 3) -> Backbone:
    net = resnet18(weights=None)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Identity()
    return Backbone(net, 512)


def tinycnn(width: int = 16, in_channels: int = 3) -> Backbone:
    def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
        return [
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]

    body = nn.Sequential(
        *block(in_channels, width, 1),
        *block(width, 2 * width, 2),
        *block(2 * width, 4 * width, 2),
        *block(4 * width, 8 * width, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return Backbone(body, 8 * width)


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "resnet18": resnet18_small,
    "resnet18_imagenet": resnet18_imagenet,
    "tinycnn": tinycnn,
}


def build_backbone(name: str, **kwargs) -> Backbone:
    """Build a registered backbone by name; unknown names list the valid ones."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone '{name}'; choose one of: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name](**kwargs)
