"""Colour operations on float image batches (B, 3, H, W) in [0, 1], with per-image factors (B,).

They follow torchvision's tensor definitions (ITU-R 601 luma, blends clamped to [0, 1], hue
shift in HSV space) so the batched augmentations match the per-image reference; they never
modify their input.
"""

from __future__ import annotations

import torch

_LUMA = (0.2989, 0.587, 0.114)


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> luma (B, 1, H, W)."""
    r, g, b = x.unbind(dim=1)
    return (_LUMA[0] * r).add_(g, alpha=_LUMA[1]).add_(b, alpha=_LUMA[2]).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """clamp(f·x + (1 - f)·other, 0, 1) per image; one new tensor, the rest in place (these ops
    are memory-bound on CPU, so every saved pass counts)."""
    f = factor.view(-1, 1, 1, 1)
    out = x * f
    return out.add_(other * (1 - f)).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with black: clamp(f·x, 0, 1)."""
    return (x * factor.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean luma."""
    mean = to_grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's luma."""
    return _blend(x, to_grayscale(x), factor)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shift`` (B,) in [-0.5, 0.5] turns, as torchvision's RGB -> HSV -> RGB.

    Fused: value and chroma are max and max - min, so only the hue is computed (in sixths of a
    turn, ties picking red, then green, as torchvision), shifted, and turned back into RGB with
    the closed form c = v - chroma · clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6, n = 5, 3, 1.
    Grey pixels (chroma 0) stay unchanged whatever their hue.
    """
    r, g, b = x.unbind(dim=1)
    value = torch.maximum(torch.maximum(r, g), b)
    chroma = value - torch.minimum(torch.minimum(r, g), b)
    inverse = torch.where(chroma > 0, chroma, 1.0).reciprocal_()
    hue = torch.where(
        value == r,
        (g - b).mul_(inverse),
        torch.where(value == g, (b - r).mul_(inverse).add_(2.0), (r - g).mul_(inverse).add_(4.0)),
    )
    hue.add_(6.0 * shift.view(-1, 1, 1))
    out = torch.empty_like(x)
    for channel, n in enumerate((5.0, 3.0, 1.0)):
        k = (hue + n).remainder_(6.0)
        k = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
        torch.sub(value, k.mul_(chroma), out=out[:, channel])
    return out
