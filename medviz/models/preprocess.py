"""The model's own preprocessing: stored images to the normalised floats its network reads.

It belongs to the model, not to the augmentation: every caller that embeds images (prediction
after training, map snapshots, ``medviz embed``) hands the model images as they are stored
(uint8, uint16 or float, any channel count), and the intensity mapping and normalisation
statistics travel in the model's checkpoints as buffers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medviz.data.intensity import Intensity, byte_range


class Preprocess(nn.Module):
    """Stored images (B, C, H, W) -> float (B, C, H, W): intensities mapped to [0, 1], then normalised.

    Args:
        mean, std: per-channel statistics of the intensities in [0, 1] (from the training data).
        intensity: how stored values map to [0, 1] (``dataset.normalise``); None: 0-255.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], intensity: Intensity | None = None) -> None:
        super().__init__()
        channels = len(mean)
        intensity = intensity or byte_range(channels)
        if not intensity.per_image and len(intensity.low) != channels:
            raise ValueError(f"intensity range for {len(intensity.low)} channels, statistics for {channels}")
        low = intensity.low if not intensity.per_image else (0.0,) * channels
        high = intensity.high if not intensity.per_image else (1.0,) * channels
        shape = (1, channels, 1, 1)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(shape))
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32).view(shape))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32).view(shape))
        self.register_buffer("per_image", torch.tensor(intensity.per_image))
        # A Python copy: reading the buffer in every step would make the host wait for a GPU.
        self.scales_per_image = intensity.per_image
        self.register_load_state_dict_post_hook(
            lambda module, _: setattr(module, "scales_per_image", bool(module.per_image))
        )

    @property
    def channels(self) -> int:
        return int(self.mean.shape[1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Stored images (B, C, H, W) -> normalised float (B, C, H, W); no randomness."""
        return self.normalise(self.to_unit(images))

    def to_unit(self, images: torch.Tensor) -> torch.Tensor:
        """Stored images (B, C, H, W) -> intensities float (B, C, H, W) in [0, 1].

        For 8-bit images with the 0-255 range this is exactly ``images / 255``.
        """
        x = images.to(torch.float32, copy=True)  # a copy even for float input: changed in place below
        if self.scales_per_image:
            low = x.amin(dim=(2, 3), keepdim=True)
            span = x.amax(dim=(2, 3), keepdim=True) - low
        else:
            low, span = self.low, self.high - self.low
        # In place on the new float copy: one allocation for a batch (the same values as out of place).
        return x.sub_(low).div_(torch.where(span > 0, span, torch.ones_like(span))).clamp_(0, 1)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Float (B, C, H, W) in [0, 1] (e.g. an augmented view) -> normalised float (B, C, H, W)."""
        return (x - self.mean) / self.std
