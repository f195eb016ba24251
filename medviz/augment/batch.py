"""Batched, on-device data augmentation for contrastive training (paper §4; docs/reproducing.md).

One call turns a batch of intensities in [0, 1] (B, C, H, W) -- the model's preprocessing maps
stored images there -- into an augmented float batch in [0, 1], with independent random
parameters per image (the model's preprocessing then normalises it). Geometry works for any
channel count; ColorJitter and grayscale are RGB operations, and fluorescence images get
per-channel intensity jitter instead (:mod:`medviz.augment.intensity`). All
geometric steps -- arbitrary rotation, random resized crop, horizontal/vertical flips and 90°
rotations -- are composed into one affine matrix per image and applied in a single
``grid_sample`` pass, so a larger augmentation set costs no extra passes over the pixels.

The sets of the paper:
* ``default``: RandomResizedCrop(scale 0.2-1, ratio 3/4-4/3) -> horizontal flip (p=0.5) ->
  ColorJitter(0.4, 0.4, 0.4, 0.1) with p=0.8 -> grayscale with p=0.2 (t-SimCNE's, from SimCLR).
* ``rot90``: default + vertical flip (p=0.5) + 90° rotation (p=0.5): all 8 symmetries of the
  square equally likely.
* ``randrot``: rot90 + rotation by U(-45°, 45°) always, applied first, with the uncovered corners
  filled with the dataset's mean border colour.
* ``fluorescence`` (medviz's, for C-channel microscopy): randrot's geometry, no RGB colour ops,
  per-channel brightness / contrast / gamma jitter; channel dropout and noise optional.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medviz.augment.colour import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    to_grayscale,
)
from medviz.augment.intensity import ChannelIntensity
from medviz.augment.technical import TechnicalJitter, TechnicalSettings
from medviz.errors import ConfigError

_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def sampling_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``F.affine_grid(theta, (B, C, H, W), align_corners=False)``: (B, H, W, 2) sampling positions.

    Same values (to float rounding), built by broadcasting each plane straight into the
    interleaved grid instead of a batched matmul over every pixel -- about 7x faster on CPU for
    small images.
    """
    xs = (torch.arange(width, device=theta.device, dtype=theta.dtype) * 2 + 1) / width - 1
    ys = ((torch.arange(height, device=theta.device, dtype=theta.dtype) * 2 + 1) / height - 1).unsqueeze(1)
    grid = torch.empty(theta.shape[0], height, width, 2, device=theta.device, dtype=theta.dtype)
    for row in range(2):
        a, b, c = (theta[:, row, col].view(-1, 1, 1) for col in range(3))
        torch.addcmul(b * ys + c, a, xs, out=grid[..., row])  # (B, H, 1) + (B, 1, 1) * (W,)
    return grid


class BatchAugment(nn.Module):
    """Random views of a batch, float in [0, 1]; augmentation only (normalising is the model's).

    Args:
        fill: one value per channel in [0, 1] for corners uncovered by rotation (the dataset's
            mean border colour); its length is the channel count the augmentation expects.
        crop_scale, crop_ratio: RandomResizedCrop's area fraction and aspect-ratio ranges.
            ``crop_scale=(1, 1), crop_ratio=(1, 1)`` disables cropping (the "no crops" ablation).
        hflip_p: probability of a horizontal flip.
        dihedral: add vertical flip and 90° rotation, each with p=0.5 (the ``rot90`` set).
        rotate_degrees: rotation by U(-d, d) applied to every image before the crop; 0 disables.
        jitter: ColorJitter strengths (brightness, contrast, saturation, hue).
        jitter_p: probability of applying ColorJitter to an image.
        gray_p: probability of converting an image to grayscale.
        channel_jitter, channel_jitter_p, channel_dropout_p, noise_std: per-channel intensity
            augmentations for any channel count (:class:`~medviz.augment.intensity.ChannelIntensity`);
            all off by default.
        technical: technical augmentations (:mod:`medviz.augment.technical`: per-channel gain, offset,
            gamma and blur, or H&E stain jitter), a mapping of :class:`TechnicalSettings`; off by default.
            ``kind=auto`` is resolved by the caller that knows the stored dtype (else: 3 channels ->
            stain).
    """

    def __init__(
        self,
        fill: Sequence[float] = (0.0, 0.0, 0.0),
        crop_scale: Sequence[float] = (0.2, 1.0),
        crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
        hflip_p: float = 0.5,
        dihedral: bool = False,
        rotate_degrees: float = 0.0,
        jitter: Sequence[float] = (0.4, 0.4, 0.4, 0.1),
        jitter_p: float = 0.8,
        gray_p: float = 0.2,
        channel_jitter: Sequence[float] = (0.0, 0.0, 0.0),
        channel_jitter_p: float = 0.0,
        channel_dropout_p: float = 0.0,
        noise_std: float = 0.0,
        technical: Mapping | None = None,
    ) -> None:
        super().__init__()
        channels = len(fill)
        rgb_ops = [
            name for name, on in (("ColorJitter", jitter_p > 0 and any(jitter)), ("grayscale", gray_p > 0)) if on
        ]
        if channels != 3 and rgb_ops:
            raise ConfigError(
                f"the augmentation uses {' and '.join(rgb_ops)}, which need RGB images, but these have {channels} "
                "channel(s): use aug=fluorescence (rotations, crops, flips and per-channel intensity jitter), "
                "or turn them off with aug.transform.jitter_p=0 aug.transform.gray_p=0"
            )
        self.channels = channels
        self.register_buffer("fill", torch.as_tensor(fill, dtype=torch.float32).view(1, channels, 1, 1))
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.crop_ratio = (float(crop_ratio[0]), float(crop_ratio[1]))
        self.hflip_p = float(hflip_p)
        self.dihedral = bool(dihedral)
        self.rotate_degrees = float(rotate_degrees)
        self.jitter = tuple(float(j) for j in jitter)
        self.jitter_p = float(jitter_p)
        self.gray_p = float(gray_p)
        self.intensity = ChannelIntensity(channel_jitter, channel_jitter_p, channel_dropout_p, noise_std)
        settings = TechnicalSettings.from_config(technical).resolved(channels, eight_bit=channels == 3)
        self.technical = TechnicalJitter(settings, channels)

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def forward(self, images: torch.Tensor, sync_free: bool | None = None) -> torch.Tensor:
        """Intensities float (B, C, H, W) in [0, 1] (or uint8, read as 0-255) -> one random view
        per image, float (B, C, H, W) in [0, 1].

        ``sync_free``: see :meth:`colour` (default: on for CUDA tensors).
        """
        if images.shape[1] != self.channels:
            raise ValueError(
                f"augmentation built for {self.channels} channels got images of shape {tuple(images.shape)}"
            )
        x = images if images.is_floating_point() else images.float() / 255.0
        x = self.geometric(x)
        x = self.technical(x)  # acquisition differences first, then the colour jitter of the view
        x = self.colour(x, sync_free=sync_free)
        return self.intensity(x, inplace=True)  # x is the warp's new tensor, never the caller's

    # ------------------------------------------------------------------ geometry
    def sample_geometry(self, batch: int, height: int, width: int, device: torch.device) -> dict:
        """Random geometric parameters per image, in the units torchvision uses.

        Returns a dict of (B,) tensors: ``angle`` (degrees), ``crop_w``/``crop_h`` (fraction of
        the image side), ``crop_cx``/``crop_cy`` (window centre in [-1, 1]), ``hflip``, ``vflip``,
        ``rot90`` (bools).
        """
        angle = (torch.rand(batch, device=device) * 2 - 1) * self.rotate_degrees
        w, h = self._sample_crop_size(batch, height, width, device)
        # Window position: uniform over all placements that keep it inside the image.
        cx = (torch.rand(batch, device=device) * 2 - 1) * (1 - w)
        cy = (torch.rand(batch, device=device) * 2 - 1) * (1 - h)
        hflip = torch.rand(batch, device=device) < self.hflip_p
        p_dihedral = 0.5 if self.dihedral else 0.0
        vflip = torch.rand(batch, device=device) < p_dihedral
        rot90 = torch.rand(batch, device=device) < p_dihedral
        return dict(
            angle=angle,
            crop_w=w,
            crop_h=h,
            crop_cx=cx,
            crop_cy=cy,
            hflip=hflip,
            vflip=vflip,
            rot90=rot90,
        )

    def _sample_crop_size(self, batch: int, height: int, width: int, device: torch.device):
        """RandomResizedCrop's size rule, vectorised: 10 tries, the first that fits, else all."""
        tries = 10
        area = torch.empty(batch, tries, device=device).uniform_(*self.crop_scale)
        log_r = torch.empty(batch, tries, device=device).uniform_(
            math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
        )
        ratio = torch.exp(log_r)
        # Sizes in pixels as torchvision rounds them, then as fractions of the side.
        w_px = torch.round(torch.sqrt(area * height * width * ratio))
        h_px = torch.round(torch.sqrt(area * height * width / ratio))
        fits = (w_px > 0) & (h_px > 0) & (w_px <= width) & (h_px <= height)
        first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((batch,), -1, device=device))
        pick = first.clamp(min=0).unsqueeze(1)
        w = torch.gather(w_px, 1, pick).squeeze(1) / width
        h = torch.gather(h_px, 1, pick).squeeze(1) / height
        whole = first < 0
        return torch.where(whole, torch.ones_like(w), w), torch.where(whole, torch.ones_like(h), h)

    def affine(self, params: dict, height: int, width: int) -> torch.Tensor:
        """Per-image 2x3 matrices mapping output coordinates to input coordinates, (B, 2, 3).

        Image operations in order: rotate -> crop -> hflip -> vflip -> rot90. Sampling coordinates
        compose in the same order: p_in = R · (c + S · (H · V · Q · p_out)).
        """
        b = params["angle"].shape[0]
        dev = params["angle"].device
        eye = torch.eye(2, device=dev).expand(b, 2, 2)
        hflip = torch.where(params["hflip"].view(b, 1, 1), torch.diag(torch.tensor([-1.0, 1.0], device=dev)), eye)
        vflip = torch.where(params["vflip"].view(b, 1, 1), torch.diag(torch.tensor([1.0, -1.0], device=dev)), eye)
        quarter = torch.tensor([[0.0, -1.0], [1.0, 0.0]], device=dev)
        rot90 = torch.where(params["rot90"].view(b, 1, 1), quarter, eye)
        scale = torch.diag_embed(torch.stack([params["crop_w"], params["crop_h"]], dim=1))
        centre = torch.stack([params["crop_cx"], params["crop_cy"]], dim=1).unsqueeze(2)
        # Rotation about the image centre, done in pixel units so non-square images stay right.
        rad = torch.deg2rad(params["angle"])
        cos, sin = torch.cos(rad), torch.sin(rad)
        rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
        to_px = torch.diag(torch.tensor([width / 2.0, height / 2.0], device=dev))
        from_px = torch.diag(torch.tensor([2.0 / width, 2.0 / height], device=dev))
        rot = from_px @ rot @ to_px
        linear = rot @ scale @ hflip @ vflip @ rot90
        return torch.cat([linear, rot @ centre], dim=2)

    def geometric(self, x: torch.Tensor, params: dict | None = None) -> torch.Tensor:
        """Apply rotation, crop-resize and flips in one warp; float (B, C, H, W) in [0, 1]."""
        b, _, h, w = x.shape
        params = params or self.sample_geometry(b, h, w, x.device)
        grid = sampling_grid(self.affine(params, h, w), h, w)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if self.rotate_degrees > 0:
            # (B, 1, H, W): 1 where the position lies in the input image. Weights of exactly 0 and 1
            # give torch.where's values (v * 1 + f * 0 = v) at a fraction of its cost on the CPU.
            inside = (grid.abs().amax(dim=-1) <= 1).unsqueeze(1).to(out.dtype)
            out = out.mul_(inside).addcmul_(self.fill.to(out.dtype), 1 - inside)
        return out

    # ------------------------------------------------------------------ colour
    def colour(self, x: torch.Tensor, sync_free: bool | None = None) -> torch.Tensor:
        """ColorJitter (random op order per image, as torchvision) then random grayscale.

        Args:
            x: float (B, 3, H, W) in [0, 1].
            sync_free: apply each op to the whole batch and keep it where chosen, instead of
                gathering the chosen images. Same values; no data-dependent shapes, so the host
                never waits for the GPU. Default: on for CUDA tensors (on the CPU gathering
                does less work).
        """
        b = x.shape[0]
        dev = x.device
        if self.jitter_p > 0 and any(self.jitter):
            apply = torch.rand(b, device=dev) < self.jitter_p
            factors = self.sample_jitter(b, dev)
            order = torch.argsort(torch.rand(b, 4, device=dev), dim=1)
            masked = x.is_cuda if sync_free is None else sync_free
            for step in range(4):
                for op_index, op in enumerate(_JITTER_OPS):
                    if not self.jitter[op_index]:
                        continue
                    chosen = apply & (order[:, step] == op_index)
                    if masked:
                        x = torch.where(chosen.view(b, 1, 1, 1), op(x, factors[:, op_index]), x)
                        continue
                    rows = torch.nonzero(chosen).squeeze(1)
                    if rows.numel():
                        x[rows] = op(x[rows], factors[rows, op_index])
        if self.gray_p > 0:
            gray = (torch.rand(b, device=dev) < self.gray_p).view(b, 1, 1, 1).to(x.dtype)
            x = x.mul(1 - gray).addcmul_(to_grayscale(x), gray)  # exact 0/1 weights: torch.where's values
        return x

    def sample_jitter(self, batch: int, device: torch.device) -> torch.Tensor:
        """(B, 4) factors: brightness, contrast, saturation in [1-s, 1+s]; hue in [-h, h]."""
        bri, con, sat, hue = self.jitter
        lo = torch.tensor([max(0.0, 1 - bri), max(0.0, 1 - con), max(0.0, 1 - sat), -hue], device=device)
        hi = torch.tensor([1 + bri, 1 + con, 1 + sat, hue], device=device)
        return lo + (hi - lo) * torch.rand(batch, 4, device=device)
