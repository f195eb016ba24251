"""Technical augmentations: fluorescence gain/offset/gamma/blur and H&E stain jitter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from medviz.augment import BatchAugment
from medviz.augment.technical import (
    TechnicalJitter,
    TechnicalSettings,
    blur_per_image,
    hed_to_rgb,
    rgb_to_hed,
)
from medviz.errors import ConfigError


def _jitter(kind: str, channels: int, **strengths) -> TechnicalJitter:
    base = {"p": 1.0, "gain": 0.0, "offset": 0.0, "gamma": 0.0, "blur": 0.0, "blur_p": 0.0, "stain": 0.0}
    return TechnicalJitter(TechnicalSettings(kind=kind, **{**base, **strengths}), channels)


def _images(b: int = 16, c: int = 5, side: int = 16) -> torch.Tensor:
    return torch.rand(b, c, side, side, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.2


def test_gain_is_one_factor_per_image_and_channel_within_its_range():
    x = _images()
    out = _jitter("fluorescence", 5, gain=0.3)(x)
    ratio = out / x
    per_channel = ratio.flatten(2)
    assert torch.allclose(per_channel, per_channel[..., :1].expand_as(per_channel), atol=1e-5)
    factors = per_channel[..., 0]
    assert factors.min() >= 1 / 1.3 - 1e-5 and factors.max() <= 1.3 + 1e-5
    assert factors.std(dim=1).min() > 0  # channels of one image get their own factors
    assert (factors > 1).any() and (factors < 1).any()  # brighter and darker alike


def test_offset_shifts_each_channel_by_a_constant_within_its_range():
    x = _images()
    out = _jitter("fluorescence", 5, offset=0.05)(x)
    shift = (out - x).flatten(2)
    assert torch.allclose(shift, shift[..., :1].expand_as(shift), atol=1e-6)
    assert shift.abs().max() <= 0.05 + 1e-6 and shift.abs().max() > 0.01


def test_gamma_is_a_power_per_channel():
    x = _images()
    out = _jitter("fluorescence", 5, gamma=0.5)(x)
    exponent = (torch.log(out) / torch.log(x)).flatten(2)
    assert torch.allclose(exponent, exponent[..., :1].expand_as(exponent), atol=1e-4)
    assert exponent.min() >= 1 / 1.5 - 1e-4 and exponent.max() <= 1.5 + 1e-4


def test_images_not_drawn_are_left_exactly_as_they_were():
    x = _images(64)
    jitter = TechnicalJitter(TechnicalSettings(kind="fluorescence", p=0.5, blur=1.0, blur_p=1.0), 5)
    torch.manual_seed(3)
    out = jitter(x)
    same = (out == x).flatten(1).all(dim=1)
    assert 10 < int(same.sum()) < 54  # about half untouched, bit for bit
    assert torch.equal(x, _images(64))  # the input is never changed


def test_blur_per_image_matches_a_reference_gaussian_with_each_images_sigma():
    x = _images(3, 2, 24)
    sigmas = torch.tensor([0.0, 0.7, 1.5])
    out = blur_per_image(x, sigmas)
    assert torch.allclose(out[0], x[0], atol=1e-6)  # sigma 0: unchanged
    radius = math.ceil(3 * 1.5)
    for i in (1, 2):
        reference = x[i].numpy().astype(np.float64)
        for axis in (1, 2):
            # torch's reflect padding is scipy's "mirror"; truncate at the same radius.
            s = float(sigmas[i])
            reference = gaussian_filter1d(reference, s, axis=axis, mode="mirror", truncate=radius / s)
        np.testing.assert_allclose(out[i].numpy(), reference, atol=1e-5)


def test_blur_lowers_high_frequencies_of_the_images_it_draws():
    x = _images(32)
    torch.manual_seed(0)
    out = _jitter("fluorescence", 5, blur=2.0, blur_p=1.0)(x)

    def roughness(t):
        return (t[..., 1:, :] - t[..., :-1, :]).abs().mean(dim=(1, 2, 3))

    assert (roughness(out) <= roughness(x) + 1e-6).all()
    assert (roughness(out) < 0.8 * roughness(x)).float().mean() > 0.5


def _pure_stain_image(amounts: torch.Tensor) -> torch.Tensor:
    """RGB (B, 3, H, W) of given stain amounts (B, 3, H, W) by the Beer-Lambert model (Ruifrok's vectors)."""
    vectors = torch.tensor([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
    density = torch.einsum("bdhw,dc->bchw", amounts, vectors)
    return torch.exp(density * math.log(1e-6))


def test_colour_deconvolution_finds_the_stain_an_image_was_made_of():
    amounts = torch.zeros(2, 3, 8, 8)
    amounts[0, 0] = torch.linspace(0.02, 0.2, 64).view(8, 8)  # haematoxylin only
    amounts[1, 1] = torch.linspace(0.02, 0.2, 64).view(8, 8)  # eosin only
    stains = rgb_to_hed(_pure_stain_image(amounts))
    assert torch.allclose(stains, amounts, atol=1e-4)
    assert torch.allclose(hed_to_rgb(stains), _pure_stain_image(amounts), atol=1e-5)


def test_stain_jitter_scales_and_shifts_each_stain_within_sigma():
    amounts = torch.zeros(8, 3, 8, 8)
    amounts[:, 0] = torch.linspace(0.05, 0.25, 64).view(1, 8, 8)
    amounts[:, 1] = torch.linspace(0.25, 0.05, 64).view(1, 8, 8)
    x = _pure_stain_image(amounts)
    torch.manual_seed(1)
    out = _jitter("stain", 3, stain=0.05)(x)
    assert out.min() >= 0 and out.max() <= 1
    after = rgb_to_hed(out)
    for stain in (0, 1):
        before_s, after_s = amounts[:, stain].flatten(1), after[:, stain].flatten(1)
        for image in range(8):
            slope, intercept = np.polyfit(before_s[image].numpy(), after_s[image].numpy(), 1)
            assert 0.95 - 1e-3 <= slope <= 1.05 + 1e-3
            assert -0.05 - 1e-3 <= intercept <= 0.05 + 1e-3
    assert not torch.allclose(out, x, atol=1e-3)


def test_stain_jitter_is_refused_for_images_that_are_not_rgb():
    with pytest.raises(ConfigError, match="kind=fluorescence"):
        _jitter("stain", 5, stain=0.05)


def test_settings_refuse_unknown_keys_kinds_and_negative_strengths():
    with pytest.raises(ConfigError, match="no key sigma"):
        TechnicalSettings.from_config({"sigma": 0.1})
    with pytest.raises(ConfigError, match="not known"):
        TechnicalSettings.from_config({"kind": "he"})
    with pytest.raises(ConfigError, match=">= 0"):
        TechnicalSettings.from_config({"kind": "fluorescence", "gain": -0.1})


def test_auto_is_stain_for_8_bit_rgb_and_fluorescence_otherwise():
    auto = TechnicalSettings(kind="auto")
    assert auto.resolved(3, eight_bit=True).kind == "stain"
    assert auto.resolved(3, eight_bit=False).kind == "fluorescence"
    assert auto.resolved(5, eight_bit=False).kind == "fluorescence"


def test_batch_augment_without_technical_draws_the_same_views_as_before():
    x = _images(8, 5, 16)
    plain = BatchAugment(fill=[0.0] * 5, jitter_p=0, gray_p=0)
    off = BatchAugment(fill=[0.0] * 5, jitter_p=0, gray_p=0, technical={"kind": "none", "gain": 0.5})
    torch.manual_seed(0)
    a = plain(x)
    torch.manual_seed(0)
    b = off(x)
    assert torch.equal(a, b)


def test_batch_augment_applies_the_technical_jitter():
    x = _images(8, 5, 16)
    geometry_only = {"crop_scale": (1, 1), "crop_ratio": (1, 1), "hflip_p": 0, "jitter_p": 0, "gray_p": 0}
    augment = BatchAugment(fill=[0.0] * 5, technical={"kind": "fluorescence", "p": 1.0, "blur_p": 0}, **geometry_only)
    out = augment(x)
    assert not torch.allclose(out, x, atol=1e-3)
    assert out.min() >= 0 and out.max() <= 1
