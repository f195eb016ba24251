"""Per-channel intensity augmentations, synthcells and the false-colour composite."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medviz.augment import BatchAugment
from medviz.augment.intensity import ChannelIntensity
from medviz.data.display import colour_table, composite, default_colours
from medviz.data.prepare.channels import configure_channels
from medviz.data.synthetic.synthcells import CLASSES, MITO_BRIGHT_FACTOR, load_synthcells
from medviz.errors import ConfigError


def test_channel_jitter_factors_are_independent_and_uniform_in_their_ranges():
    torch.manual_seed(0)
    factors = ChannelIntensity((0.2, 0.3, 0.25)).sample_factors(20000, 5, torch.device("cpu"))
    brightness, contrast, gamma = factors.unbind(-1)
    assert brightness.min() >= 0.8 and brightness.max() <= 1.2 and abs(brightness.mean() - 1) < 0.005
    assert contrast.min() >= 0.7 and contrast.max() <= 1.3
    log_gamma = gamma.log() / np.log(1.25)  # log-uniform in [1/1.25, 1.25]: uniform in [-1, 1]
    assert log_gamma.min() >= -1 and log_gamma.max() <= 1 and abs(log_gamma.mean()) < 0.02
    # Channels of one image get their own factors.
    assert abs(np.corrcoef(brightness[:, 0], brightness[:, 1])[0, 1]) < 0.03


def test_channel_jitter_changes_only_the_chosen_images_each_channel_on_its_own():
    torch.manual_seed(1)
    x = torch.rand(4000, 3, 8, 8) * 0.5 + 0.25
    out = ChannelIntensity((0.2, 0.0, 0.0), jitter_p=0.5)(x)
    ratio = out.mean(dim=(2, 3)) / x.mean(dim=(2, 3))  # (B, C): the brightness factor of each channel
    changed = (ratio - 1).abs().amax(dim=1) > 1e-6
    assert abs(changed.float().mean() - 0.5) < 0.03
    assert ratio[changed].std(dim=1).mean() > 0.05  # channels of a jittered image differ


def test_channel_dropout_zeroes_one_channel_with_its_probability():
    torch.manual_seed(2)
    out = ChannelIntensity(dropout_p=0.3)(torch.ones(5000, 4, 2, 2))
    zeroed = (out.amax(dim=(2, 3)) == 0).sum(dim=1)
    assert set(zeroed.unique().tolist()) <= {0, 1} and abs(zeroed.float().mean() - 0.3) < 0.03


def test_noise_stays_in_range_and_off_means_no_random_draws():
    torch.manual_seed(3)
    noisy = ChannelIntensity(noise_std=0.1)(torch.full((100, 2, 8, 8), 0.5))
    assert noisy.min() >= 0 and noisy.max() <= 1 and noisy.std() > 0.02
    x = torch.rand(8, 3, 4, 4)
    state = torch.get_rng_state()
    assert torch.equal(ChannelIntensity()(x), x)  # off: same values ...
    assert torch.equal(torch.get_rng_state(), state)  # ... and no draws, so the RGB sets' views stay the same


def test_fluorescence_augmentation_works_for_any_channel_count_in_one_pass():
    for channels in (1, 2, 5, 6):
        aug = BatchAugment(
            fill=[0.1] * channels,
            rotate_degrees=45,
            dihedral=True,
            jitter_p=0.0,
            gray_p=0.0,
            channel_jitter=(0.2, 0.2, 0.2),
            channel_jitter_p=0.8,
        )
        views = aug(torch.rand(16, channels, 12, 12))
        assert views.shape == (16, channels, 12, 12) and views.min() >= 0 and views.max() <= 1


def test_grayscale_on_two_channels_is_refused_with_the_way_out():
    with pytest.raises(ConfigError, match=r"uses grayscale, which need RGB images, but these have 2 channel\(s\)"):
        BatchAugment(fill=[0.0, 0.0], jitter_p=0.0, gray_p=0.2)


def test_synthcells_are_16bit_five_channels_and_the_intensity_pair_differs_in_one_channel_only():
    data = load_synthcells(n_images=700, size=32)
    assert data.images.dtype == np.uint16 and data.images.shape == (700, 32, 32, 5)
    assert data.class_names == CLASSES and len(CLASSES) >= 6 and np.bincount(data.labels).tolist() == [100] * 7
    mean = {c: data.images[data.labels == i].reshape(-1, 5).astype(float).mean(0) - 100 for i, c in enumerate(CLASSES)}
    ratio = mean["mito_bright"] / mean["normal"]
    assert abs(ratio[3] - MITO_BRIGHT_FACTOR) < 0.25  # the mitochondria channel, 2.5x brighter ...
    assert np.all(np.abs(ratio[[0, 1, 2, 4]] - 1) < 0.1)  # ... and no other
    # Per-image scaling erases it: each image's mitochondria channel then spans [0, 1] in both classes.
    unit = configure_channels(data, normalise="image").scale().to_unit(data.images)
    per_class = [unit[data.labels == CLASSES.index(c)][..., 3].mean() for c in ("normal", "mito_bright")]
    assert abs(per_class[0] - per_class[1]) < 0.2 * per_class[0]
    dataset = configure_channels(data, normalise="dataset").scale().to_unit(data.images)
    kept = [dataset[data.labels == CLASSES.index(c)][..., 3].mean() for c in ("normal", "mito_bright")]
    assert kept[1] > 1.8 * kept[0]


def test_composite_colours_and_their_defaults():
    assert default_colours(1) == ("gray",) and default_colours(2) == ("green", "magenta")
    assert default_colours(5) == ("blue", "green", "red", "magenta", "cyan")
    colours = colour_table(2)
    np.testing.assert_array_equal(colours, [[0, 1, 0], [1, 0, 1]])
    unit = np.zeros((1, 1, 2, 2), np.float32)
    unit[0, 0, 0] = [1.0, 0.0]  # green only
    unit[0, 0, 1] = [0.5, 1.0]  # half green + full magenta
    np.testing.assert_array_equal(composite(unit, colours)[0, 0], [[0, 255, 0], [255, 128, 255]])
    with pytest.raises(ConfigError, match="gives 3 colours, but the images have 2 channels"):
        colour_table(2, ["red", "green", "blue"])
