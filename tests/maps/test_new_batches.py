"""New plates outside the training intensities: medviz embed says which end of which channel is clipped."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import torch

from medviz.maps.new_batches import outside_training_range, warn_outside_training_range


def _module(low: list[float], high: list[float], per_image: bool = False) -> SimpleNamespace:
    preprocess = SimpleNamespace(low=torch.tensor(low), high=torch.tensor(high), scales_per_image=per_image)
    return SimpleNamespace(preprocess=preprocess)


def _plate(rng: np.random.Generator) -> np.ndarray:
    """20 images (20, 8, 8, 3) of uint16: channel 0 within range, 1 brighter, 2 darker than training."""
    images = np.empty((20, 8, 8, 3), dtype=np.uint16)
    images[..., 0] = rng.integers(200, 800, size=(20, 8, 8))
    images[..., 1] = rng.integers(200, 1000, size=(20, 8, 8))  # a quarter above 800
    images[..., 2] = rng.integers(100, 500, size=(20, 8, 8))  # a quarter below 200
    return images


def test_the_shares_above_and_below_are_counted_apart():
    images = _plate(np.random.default_rng(0))
    above, below = outside_training_range(images, np.array([200, 200, 200]), np.array([800, 800, 800]))
    assert above[0] == 0 and below[0] == 0
    assert 0.2 < above[1] < 0.3 and below[1] == 0
    assert above[2] == 0 and 0.2 < below[2] < 0.3


def test_embed_names_each_clipped_channel_and_its_end(caplog):
    images = _plate(np.random.default_rng(1))
    with caplog.at_level(logging.WARNING, logger="medviz"):
        clipped = warn_outside_training_range(images, _module([200] * 3, [800] * 3), "Plate3")
    assert sorted(clipped) == [1, 2]
    assert clipped[1][0] > 0.2 and clipped[1][1] == 0
    assert clipped[2][0] == 0 and clipped[2][1] > 0.2
    assert "Plate3" in caplog.text and "channel 1: 2" in caplog.text and "above" in caplog.text
    assert "channel 0" not in caplog.text


def test_images_within_the_range_or_scaled_each_on_its_own_say_nothing(caplog):
    images = _plate(np.random.default_rng(2))
    with caplog.at_level(logging.WARNING, logger="medviz"):
        assert warn_outside_training_range(images, _module([0] * 3, [2000] * 3), "Plate3") == {}
        # per-image scaling maps every image to its own range: nothing is outside a training range
        assert warn_outside_training_range(images, _module([200] * 3, [800] * 3, per_image=True), "Plate3") == {}
    assert caplog.text == ""
