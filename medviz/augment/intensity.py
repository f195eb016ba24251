"""Per-channel intensity augmentations for microscopy images with any number of channels.

ColorJitter's hue and saturation assume three channels that together make a colour; in
fluorescence each channel is its own stain, imaged with its own exposure. What varies between
acquisitions is each channel's gain, offset and response, so each is jittered independently:

* brightness: channel x factor, factor ~ U(1 - b, 1 + b) per image and channel;
* contrast: blend with the channel's mean, factor ~ U(1 - c, 1 + c);
* gamma: x ** g with log g ~ U(-log(1 + g), log(1 + g)) (symmetric: 1.25 and 1/1.25 equally likely);
* channel dropout (optional): one random channel of an image set to 0 -- invariance to a stain's
  absence, which is only wanted when stains are redundant, so off by default;
* noise (optional): Gaussian noise of std ~ U(0, s) per image -- cameras add their own, so off
  by default.

All ops are batched (one pass over the batch, no per-image Python loop) and draw nothing from
the random generator when off, so existing augmentation sets give the same views as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class ChannelIntensity(nn.Module):
    """Independent intensity jitter per image and channel; float (B, C, H, W) in [0, 1] -> same.

    Args:
        jitter: (brightness, contrast, gamma) strengths b, c, g as above; 0 disables each.
        jitter_p: probability that an image is jittered (all its channels, each by its own factors).
        dropout_p: probability that one random channel of an image is zeroed (never with C = 1).
        noise_std: largest std of the added Gaussian noise; 0 disables it.
    """

    def __init__(
        self,
        jitter: Sequence[float] = (0.0, 0.0, 0.0),
        jitter_p: float = 0.0,
        dropout_p: float = 0.0,
        noise_std: float = 0.0,
    ) -> None:
        super().__init__()
        if len(jitter) != 3 or any(j < 0 for j in jitter):
            raise ValueError(
                f"channel_jitter must be three non-negative strengths (brightness, contrast, gamma), got {jitter}"
            )
        self.jitter = tuple(float(j) for j in jitter)
        self.jitter_p = float(jitter_p)
        self.dropout_p = float(dropout_p)
        self.noise_std = float(noise_std)

    def sample_factors(self, batch: int, channels: int, device: torch.device) -> torch.Tensor:
        """(B, C, 3) factors: brightness and contrast in [1-s, 1+s], gamma log-uniform in [1/(1+g), 1+g]."""
        bri, con, gam = self.jitter
        u = torch.rand(batch, channels, 3, device=device) * 2 - 1
        brightness = 1 + bri * u[..., 0]
        contrast = 1 + con * u[..., 1]
        gamma = torch.exp(math.log1p(gam) * u[..., 2])
        return torch.stack([brightness.clamp(min=0), contrast.clamp(min=0), gamma], dim=-1)

    @staticmethod
    def apply_factors(x: torch.Tensor, factors: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """Brightness, then contrast (a blend with each channel's mean), then gamma; factors (B, C, 3).

        ``x`` is changed in place only with ``inplace=True``. Factors of exactly 1 leave an image in [0, 1]
        exactly as it was (x * 1, x * 1 + mean * 0 and x ** 1 are exact), which is how images that
        are not jittered pass through without a ``torch.where`` -- about ten times slower than
        arithmetic on the CPU.
        """
        brightness, contrast, gamma = factors.unsqueeze(-1).unsqueeze(-1).unbind(2)  # each (B, C, 1, 1)
        x = (x.mul_(brightness) if inplace else x * brightness).clamp_(0, 1)
        mean = x.mean(dim=(2, 3), keepdim=True)
        x = x.mul_(contrast).add_(mean * (1 - contrast)).clamp_(0, 1)
        return x.pow_(gamma)

    def forward(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """Intensities float (B, C, H, W) in [0, 1] -> jittered float (B, C, H, W) in [0, 1].

        ``inplace=True`` lets the jitter overwrite ``x`` (for a caller that owns it: one full-size
        allocation less per batch, which on the CPU costs as much as the op itself).
        """
        b, c = x.shape[:2]
        dev = x.device
        if self.jitter_p > 0 and any(self.jitter):
            chosen = (torch.rand(b, device=dev) < self.jitter_p).view(b, 1, 1)
            factors = torch.where(chosen, self.sample_factors(b, c, dev), 1.0)  # (B, C, 3): 1 = unchanged
            x = self.apply_factors(x, factors, inplace)
        if self.dropout_p > 0 and c > 1:
            drop = torch.rand(b, device=dev) < self.dropout_p
            channel = torch.randint(0, c, (b,), device=dev)
            mask = drop.view(b, 1) & (torch.arange(c, device=dev).view(1, c) == channel.view(b, 1))
            x = x.masked_fill(mask.view(b, c, 1, 1), 0.0)
        if self.noise_std > 0:
            std = torch.rand(b, 1, 1, 1, device=dev) * self.noise_std
            x = (x + torch.randn_like(x) * std).clamp(0, 1)
        return x
