"""Technical augmentations: the differences between plates, slides and days, drawn per image.

What makes two acquisitions of the same cells differ is mostly technical, and it can be simulated
(issue "Maps of biology, not of plates"; docs/invariance.md):

* **fluorescence** -- each channel's gain (lamp, exposure: a factor, log-uniform in
  [1/(1+g), 1+g]), offset (camera background: U(-o, o) of full scale) and response (gamma,
  log-uniform in [1/(1+y), 1+y]), drawn per image and channel; and focus (a Gaussian blur of
  sigma ~ U(0, s) px with probability ``blur_p``, per image);
* **stain** (H&E and other brightfield stains, RGB) -- Tellez et al. 2019's HED jitter: each
  stain's amount in optical density scaled by U(1-σ, 1+σ) and shifted by U(-σ, σ); σ = 0.05 is
  their "HED-light", 0.2 "HED-strong". Colour deconvolution with Ruifrok & Johnston's H&E-DAB
  matrix (2001), as ``skimage.color.rgb2hed``; one 3x3 product each way, batched on the device.

Unlike :mod:`medviz.augment.intensity` (mild jitter that keeps absolute intensity, often the
phenotype), these are meant to span the technical range between batches; their strengths live
in the config so a screen with small batch effects can keep them small.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from medviz.errors import ConfigError

KINDS = ("none", "fluorescence", "stain", "auto")

#: Optical density of one stain unit per RGB channel: haematoxylin, eosin, DAB (Ruifrok & Johnston 2001).
_RGB_FROM_HED = torch.tensor(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]],
    dtype=torch.float64,
)
#: The smallest intensity (of 1) colour deconvolution takes the logarithm of; skimage's choice.
_FLOOR = 1e-6


@dataclass(frozen=True)
class TechnicalSettings:
    """Strengths of the technical augmentations (``aug.transform.technical``); all off by default.

    Attributes:
        kind: ``fluorescence``, ``stain``, ``none`` or ``auto`` (resolved when the model is built:
            ``stain`` for 8-bit RGB, ``fluorescence`` otherwise).
        p: probability that an image is jittered.
        gain, offset, gamma: fluorescence strengths per channel (see the module docstring).
        blur: largest blur sigma in pixels; ``blur_p`` the probability of a blur.
        stain: Tellez's σ for the HED jitter.
    """

    kind: str = "none"
    p: float = 0.8
    gain: float = 0.3
    offset: float = 0.03
    gamma: float = 0.2
    blur: float = 1.0
    blur_p: float = 0.3
    stain: float = 0.05

    @classmethod
    def from_config(cls, values: Mapping | None) -> TechnicalSettings:
        """Settings from a config mapping; unknown keys and kinds are refused with the known ones."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"aug.transform.technical has no key {', '.join(unknown)}; the keys are {', '.join(sorted(known))}"
            )
        settings = cls(**values)
        if settings.kind not in KINDS:
            raise ConfigError(
                f"aug.transform.technical.kind={settings.kind} is not known; choose one of {', '.join(KINDS)}"
            )
        strengths = {f.name: getattr(settings, f.name) for f in fields(cls) if f.name != "kind"}
        negative = [name for name, value in strengths.items() if float(value) < 0]
        if negative or not 0 <= settings.p <= 1 or not 0 <= settings.blur_p <= 1:
            raise ConfigError(
                f"aug.transform.technical: strengths must be >= 0 and p, blur_p in [0, 1]; got {strengths}"
            )
        return settings

    def resolved(self, channels: int, eight_bit: bool) -> TechnicalSettings:
        """``auto`` made concrete for images of ``channels`` channels (``eight_bit``: stored as uint8)."""
        if self.kind != "auto":
            return self
        kind = "stain" if channels == 3 and eight_bit else "fluorescence"
        return TechnicalSettings(**{**self.__dict__, "kind": kind})


def gaussian_kernels(sigmas: torch.Tensor, radius: int) -> torch.Tensor:
    """One normalised 1-D Gaussian per sigma: (B,) -> (B, 2 * radius + 1); sigma 0 is the identity."""
    offsets = torch.arange(-radius, radius + 1, device=sigmas.device, dtype=sigmas.dtype)
    safe = sigmas.clamp(min=1e-3).unsqueeze(1)
    kernels = torch.exp(-0.5 * (offsets / safe) ** 2)
    return kernels / kernels.sum(dim=1, keepdim=True)


def blur_per_image(x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Gaussian blur with each image's own sigma: x (B, C, H, W), sigmas (B,) px -> (B, C, H, W).

    Separable, as two grouped convolutions over all images and channels at once; edges reflected.
    """
    b, c, h, w = x.shape
    radius = max(1, min(math.ceil(3 * float(sigmas.max())), (min(h, w) - 1)))
    kernels = gaussian_kernels(sigmas.to(x.dtype), radius).repeat_interleave(c, dim=0)  # (B*C, K)
    flat = x.reshape(1, b * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernels.view(b * c, 1, 1, -1), groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernels.view(b * c, 1, -1, 1), groups=b * c)
    return flat.view(b, c, h, w)


def rgb_to_hed(x: torch.Tensor) -> torch.Tensor:
    """RGB (B, 3, H, W) in [0, 1] -> stain amounts (B, 3, H, W) (H, E, DAB), in skimage's scale."""
    hed_from_rgb = torch.linalg.inv(_RGB_FROM_HED).to(x.device, x.dtype)
    density = torch.log(x.clamp(min=_FLOOR)) / math.log(_FLOOR)  # optical density, scaled to [0, 1]
    return torch.einsum("bchw,cd->bdhw", density, hed_from_rgb).clamp_(min=0)


def hed_to_rgb(stains: torch.Tensor) -> torch.Tensor:
    """Stain amounts (B, 3, H, W) -> RGB (B, 3, H, W) in [0, 1]; the inverse of :func:`rgb_to_hed`."""
    rgb_from_hed = _RGB_FROM_HED.to(stains.device, stains.dtype)
    density = torch.einsum("bdhw,dc->bchw", stains, rgb_from_hed)
    return torch.exp(density * math.log(_FLOOR)).clamp_(0, 1)


class TechnicalJitter(nn.Module):
    """Technical augmentations of float (B, C, H, W) in [0, 1] -> same (see the module docstring).

    Args:
        settings: strengths and kind (never ``auto`` here: resolve it first).
        channels: the images' channel count (``stain`` needs 3).
    """

    def __init__(self, settings: TechnicalSettings, channels: int) -> None:
        super().__init__()
        if settings.kind == "auto":
            raise ValueError("resolve technical kind auto with TechnicalSettings.resolved before building")
        if settings.kind == "stain" and channels != 3:
            raise ConfigError(
                f"aug.transform.technical.kind=stain jitters H&E stains and needs 8-bit RGB images, but these "
                f"have {channels} channel(s): use kind=fluorescence (per-channel gain, offset, gamma and blur)"
            )
        self.settings = settings

    @property
    def active(self) -> bool:
        return self.settings.kind != "none" and self.settings.p > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float (B, C, H, W) in [0, 1] -> jittered float (B, C, H, W) in [0, 1]; x is left unchanged."""
        if not self.active:
            return x
        b = x.shape[0]
        chosen = torch.rand(b, device=x.device) < self.settings.p
        if self.settings.kind == "stain":
            return self._stain(x, chosen)
        return self._fluorescence(x, chosen)

    def _fluorescence(self, x: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        s = self.settings
        b, c = x.shape[:2]
        u = torch.rand(b, c, 3, device=x.device, dtype=x.dtype) * 2 - 1
        on = chosen.view(b, 1).to(x.dtype)  # 0: factors of exactly 1 and 0 leave the image as it was
        gain = torch.exp(math.log1p(s.gain) * u[..., 0] * on).view(b, c, 1, 1)
        offset = (s.offset * u[..., 1] * on).view(b, c, 1, 1)
        gamma = torch.exp(math.log1p(s.gamma) * u[..., 2] * on).view(b, c, 1, 1)
        out = (x * gain + offset).clamp_(0, 1).pow_(gamma)
        if s.blur > 0 and s.blur_p > 0:
            blurred = chosen & (torch.rand(b, device=x.device) < s.blur_p)
            if bool(blurred.any()):
                sigmas = torch.rand(b, device=x.device, dtype=x.dtype) * s.blur * blurred.to(x.dtype)
                rows = torch.nonzero(blurred).squeeze(1)
                out[rows] = blur_per_image(out[rows], sigmas[rows])
        return out

    def _stain(self, x: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        sigma = self.settings.stain
        rows = torch.nonzero(chosen).squeeze(1)
        out = x.clone()
        if rows.numel() == 0 or sigma == 0:
            return out
        k = rows.numel()
        scale = 1 + sigma * (torch.rand(k, 3, 1, 1, device=x.device, dtype=x.dtype) * 2 - 1)
        shift = sigma * (torch.rand(k, 3, 1, 1, device=x.device, dtype=x.dtype) * 2 - 1)
        stains = rgb_to_hed(x[rows])
        out[rows] = hed_to_rgb((stains * scale + shift).clamp_(min=0))
        return out
