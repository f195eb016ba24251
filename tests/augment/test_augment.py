"""Batched augmentations against torchvision's per-image reference."""

import math

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from scipy.stats import chisquare, ks_2samp

from medviz.augment import BatchAugment, colour
from medviz.models.preprocess import Preprocess

N = 4000
P_MIN = 1e-3  # KS / chi-square p-value below which two samples are called different


def make(**kwargs) -> BatchAugment:
    return BatchAugment(fill=[0.25, 0.5, 0.75], **kwargs)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_crop_size_distribution_matches_random_resized_crop():
    image = torch.zeros(3, 28, 28)
    ref = np.array([T.RandomResizedCrop.get_params(image, [0.2, 1.0], [3 / 4, 4 / 3])[2:] for _ in range(N)])
    ref_h, ref_w = ref[:, 0] / 28, ref[:, 1] / 28
    params = make().sample_geometry(N, 28, 28, torch.device("cpu"))
    w, h = params["crop_w"].numpy(), params["crop_h"].numpy()
    assert ks_2samp(w * h, ref_w * ref_h).pvalue > P_MIN  # area fraction
    assert ks_2samp(w / h, ref_w / ref_h).pvalue > P_MIN  # aspect ratio
    # The window always lies inside the image.
    assert (np.abs(params["crop_cx"].numpy()) + w <= 1 + 1e-6).all()
    assert (np.abs(params["crop_cy"].numpy()) + h <= 1 + 1e-6).all()


def test_rotation_angle_matches_random_rotation():
    ref = np.array([T.RandomRotation.get_params([-45.0, 45.0]) for _ in range(N)])
    ours = make(rotate_degrees=45).sample_geometry(N, 28, 28, torch.device("cpu"))["angle"].numpy()
    assert ks_2samp(ours, ref).pvalue > P_MIN
    assert make().sample_geometry(10, 28, 28, torch.device("cpu"))["angle"].abs().max() == 0


def test_flip_probabilities():
    default = make().sample_geometry(N, 28, 28, torch.device("cpu"))
    assert default["hflip"].float().mean() == pytest.approx(0.5, abs=0.03)
    assert not default["vflip"].any() and not default["rot90"].any()
    rot = make(dihedral=True).sample_geometry(N, 28, 28, torch.device("cpu"))
    assert rot["vflip"].float().mean() == pytest.approx(0.5, abs=0.03)
    assert rot["rot90"].float().mean() == pytest.approx(0.5, abs=0.03)


def test_jitter_factors_match_color_jitter():
    jitter = T.ColorJitter(0.4, 0.4, 0.4, 0.1)
    ref = [jitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) for _ in range(N)]
    ref_factors = np.array([[r[1], r[2], r[3], r[4]] for r in ref])
    ours = make().sample_jitter(N, torch.device("cpu")).numpy()
    for k in range(4):
        assert ks_2samp(ours[:, k], ref_factors[:, k]).pvalue > P_MIN
    # torchvision applies the 4 ops in a uniformly random order: each op first 1/4 of the time.
    first_ops = np.bincount([int(r[0][0]) for r in ref], minlength=4)
    assert chisquare(first_ops).pvalue > P_MIN


@pytest.mark.parametrize(
    ("ours", "theirs", "factor"),
    [
        (colour.adjust_brightness, TF.adjust_brightness, 1.3),
        (colour.adjust_contrast, TF.adjust_contrast, 0.7),
        (colour.adjust_saturation, TF.adjust_saturation, 1.4),
        (colour.adjust_hue, TF.adjust_hue, 0.08),
        (colour.adjust_hue, TF.adjust_hue, -0.1),
    ],
)
def test_colour_ops_equal_torchvision(ours, theirs, factor):
    images = torch.rand(5, 3, 12, 12)
    expected = torch.stack([theirs(img, factor) for img in images])
    got = ours(images.clone(), torch.full((5,), factor))
    assert torch.allclose(got, expected, atol=1e-5)


def test_hue_equals_torchvision_on_ties_greys_and_saturated_pixels():
    """Pixels where two channels tie for the maximum, grey pixels and pure colours take separate
    branches of the hue formula; each image gets its own shift, over the whole range."""
    levels = torch.tensor([0.0, 0.25, 0.5, 1.0])
    corners = torch.cartesian_prod(levels, levels, levels).T.reshape(1, 3, 8, 8)  # every combination, ties included
    images = torch.cat([corners.expand(6, -1, -1, -1), torch.rand(6, 3, 8, 8)])
    shifts = torch.linspace(-0.5, 0.5, 12)
    expected = torch.stack([TF.adjust_hue(img, float(s)) for img, s in zip(images, shifts, strict=True)])
    original = images.clone()
    assert torch.allclose(colour.adjust_hue(images, shifts), expected, atol=1e-5)
    assert torch.equal(images, original)  # the input is left alone


def test_blend_ops_leave_their_input_alone():
    images = torch.rand(3, 3, 6, 6)
    original = images.clone()
    for op in (colour.adjust_brightness, colour.adjust_contrast, colour.adjust_saturation):
        op(images, torch.full((3,), 1.5))
    assert torch.equal(images, original)


def test_grayscale_equals_torchvision():
    images = torch.rand(4, 3, 9, 9)
    assert torch.allclose(colour.to_grayscale(images), TF.rgb_to_grayscale(images), atol=1e-6)


def _is_gray(x):
    return (x[:, 0] - x[:, 1]).abs().amax(dim=(1, 2)) < 1e-6


def test_colour_application_probabilities():
    images = torch.rand(N, 3, 4, 4)
    gray_only = make(jitter_p=0.0).colour(images.clone())
    assert _is_gray(gray_only).float().mean() == pytest.approx(0.2, abs=0.03)
    jitter_only = make(gray_p=0.0).colour(images.clone())
    unchanged = (jitter_only - images).abs().amax(dim=(1, 2, 3)) < 1e-7
    assert unchanged.float().mean() == pytest.approx(0.2, abs=0.03)


def _params(n, **overrides):
    p = dict(
        angle=torch.zeros(n),
        crop_w=torch.ones(n),
        crop_h=torch.ones(n),
        crop_cx=torch.zeros(n),
        crop_cy=torch.zeros(n),
        hflip=torch.zeros(n, dtype=torch.bool),
        vflip=torch.zeros(n, dtype=torch.bool),
        rot90=torch.zeros(n, dtype=torch.bool),
    )
    p.update(overrides)
    return p


def test_identity_flip_and_rot90_warps_are_exact():
    x = torch.rand(2, 3, 8, 8)
    aug = make(dihedral=True)
    assert torch.allclose(aug.geometric(x, _params(2)), x, atol=1e-5)
    flipped = aug.geometric(x, _params(2, hflip=torch.ones(2, dtype=torch.bool)))
    assert torch.allclose(flipped, torch.flip(x, dims=[3]), atol=1e-5)
    turned = aug.geometric(x, _params(2, rot90=torch.ones(2, dtype=torch.bool)))
    assert any(torch.allclose(turned, torch.rot90(x, k, dims=(2, 3)), atol=1e-5) for k in (1, 3))


def test_crop_selects_the_window():
    x = torch.rand(1, 3, 8, 8)
    # Top-left quarter, resized back to 8x8: pixel (0, 0) of the output is near pixel (0, 0) of x.
    p = _params(
        1,
        crop_w=torch.tensor([0.5]),
        crop_h=torch.tensor([0.5]),
        crop_cx=torch.tensor([-0.5]),
        crop_cy=torch.tensor([-0.5]),
    )
    out = make().geometric(x, p)
    expected = TF.resize(x[:, :, :4, :4], [8, 8], antialias=False)
    # Interior pixels agree exactly; on the window's far edge we blend with the pixel just
    # outside the window where torchvision clamps to the window's last pixel.
    assert torch.allclose(out[..., :7, :7], expected[..., :7, :7], atol=1e-5)


def test_dihedral_group_is_uniform():
    """rot90 set: all 8 symmetries of the square equally likely (paper §4)."""
    base = torch.arange(16.0).view(1, 1, 4, 4).expand(1, 3, 4, 4) / 16
    candidates = [torch.rot90(f, k, dims=(2, 3)) for f in (base, torch.flip(base, dims=[3])) for k in range(4)]
    aug = make(dihedral=True, crop_scale=(1, 1), crop_ratio=(1, 1))
    out = aug.geometric(base.expand(N, 3, 4, 4).contiguous())
    which = [next(i for i, c in enumerate(candidates) if torch.allclose(o, c[0], atol=1e-4)) for o in out]
    counts = np.bincount(which, minlength=8)
    assert (counts > 0).all() and chisquare(counts).pvalue > P_MIN


def test_randrot_fills_corners_with_the_border_colour():
    x = torch.rand(1, 3, 28, 28)
    aug = make(rotate_degrees=45)
    out = aug.geometric(x, _params(1, angle=torch.tensor([45.0])))
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.25, 0.5, 0.75]))
    assert not torch.allclose(out[0, :, 14, 14], torch.tensor([0.25, 0.5, 0.75]))
    corner_area = (out[0] == torch.tensor([0.25, 0.5, 0.75]).view(3, 1, 1)).all(0).float().mean()
    # A square and its 45° rotation overlap in a regular octagon of area 2(√2 - 1).
    assert corner_area.item() == pytest.approx(1 - 2 * (math.sqrt(2) - 1), abs=0.03)


def test_forward_gives_independent_views_in_unit_range_and_the_model_normalises():
    images = torch.full((64, 3, 16, 16), 128, dtype=torch.uint8)
    images[:, :, :8] = 20
    aug = BatchAugment(fill=(0.3,) * 3, rotate_degrees=45, dihedral=True, jitter=(0.0, 0.0, 0.0, 0.0), gray_p=0.0)
    views = aug(images)
    assert views.shape == (64, 3, 16, 16) and views.dtype == torch.float32
    assert len({tuple(v.flatten()[:20].tolist()) for v in views}) > 50  # per-sample parameters
    assert views.min() >= 20 / 255 - 1e-6 and views.max() <= 128 / 255 + 1e-6  # no normalisation here
    plain = Preprocess([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])(images[:1])
    assert torch.allclose(plain[0, 0, 0, 0], torch.tensor((20 / 255 - 0.5) / 0.25))


@pytest.mark.parametrize("aug", [{}, {"dihedral": True, "rotate_degrees": 45.0}])
def test_sync_free_path_gives_the_same_views(aug):
    """The GPU's path (whole-batch ops kept where chosen) equals the CPU's (gather the chosen images)."""
    augment = BatchAugment(fill=(0.8, 0.7, 0.75), **aug)
    images = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8)
    torch.manual_seed(5)
    gathered = augment(images, sync_free=False)
    torch.manual_seed(5)
    masked = augment(images, sync_free=True)
    assert torch.allclose(gathered, masked, atol=1e-6)
