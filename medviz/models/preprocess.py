"""The model's own preprocessing: uint8 images to the normalised floats its network reads.

It belongs to the model, not to the augmentation: every caller that embeds images (prediction
after training, map snapshots, ``medviz embed``) hands the model uint8 images, and the
normalisation statistics travel in the model's checkpoints as buffers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Preprocess(nn.Module):
    """uint8 (B, C, H, W) -> float (B, C, H, W): pixels scaled to [0, 1], then normalised per channel.

    Args:
        mean, std: per-channel statistics of the pixels in [0, 1] (from the training data).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        channels = len(mean)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, channels, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, channels, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> normalised float (B, C, H, W); no randomness."""
        return self.normalise(images.float() / 255.0)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Float (B, C, H, W) in [0, 1] (e.g. an augmented view) -> normalised float (B, C, H, W)."""
        return (x - self.mean) / self.std
