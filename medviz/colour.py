"""Colour operations on float image batches (B, 3, H, W) in [0, 1], with per-image factors (B,).

They follow torchvision's tensor definitions (ITU-R 601 luma, blends clamped to [0, 1], hue
shift in HSV space) so the batched augmentations match the per-image reference.
"""

from __future__ import annotations

import torch

_LUMA = (0.2989, 0.587, 0.114)


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> luma (B, 1, H, W)."""
    r, g, b = x.unbind(dim=1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = to_grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, to_grayscale(x), factor)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> HSV, each channel in [0, 1]; ties pick red, then green (as torchvision)."""
    r, g, b = x.unbind(dim=1)
    maxc, argmax = x.max(dim=1)
    delta = maxc - x.min(dim=1).values
    chromatic = delta > 0
    safe_delta = torch.where(chromatic, delta, torch.ones_like(delta))
    hue = torch.where(
        argmax == 0,
        (g - b) / safe_delta,
        torch.where(argmax == 1, 2.0 + (b - r) / safe_delta, 4.0 + (r - g) / safe_delta),
    )
    hue = torch.where(chromatic, torch.remainder(hue / 6.0, 1.0), torch.zeros_like(hue))
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    return torch.stack([hue, sat, maxc], dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) HSV in [0, 1] -> RGB, by the closed form f(n) = v - v·s·clamp(min(k, 4 - k), 0, 1)
    with k = (n + 6h) mod 6 and n = 5, 3, 1 for R, G, B: three elementwise passes, no per-sector gather."""
    h, s, v = x.unbind(dim=1)
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(n + 6.0 * h, 6.0)
        channels.append(v - v * s * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0))
    return torch.stack(channels, dim=1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shift`` (B,) in [-0.5, 0.5] turns."""
    hsv = rgb_to_hsv(x)
    hue = torch.remainder(hsv[:, 0] + shift.view(-1, 1, 1), 1.0)
    return hsv_to_rgb(torch.stack([hue, hsv[:, 1], hsv[:, 2]], dim=1))
