"""BatchNorm statistics of each technical batch at embedding time (BEN)."""

from __future__ import annotations

import torch
from torch import nn

from medviz.methods.batch_statistics import own_statistics


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Flatten()).eval()


def _chunks(images: torch.Tensor, size: int = 7):
    return lambda: iter(images.split(size))


def test_statistics_are_those_of_the_given_images_and_the_trained_ones_come_back():
    net = _net()
    bn = net[1]
    bn.running_mean.fill_(0.5)
    bn.running_var.fill_(2.0)
    images = torch.randn(40, 2, 8, 8) * 3 + 5
    with own_statistics(net, _chunks(images), net) as seen:
        activations = net[0](images)
        assert seen == 40
        assert torch.allclose(bn.running_mean, activations.mean(dim=(0, 2, 3)), atol=1e-4)
        assert torch.allclose(bn.running_var, activations.var(dim=(0, 2, 3)), rtol=0.05)
        assert not bn.training
        normalised = net(images).view(40, 4, -1)
        assert normalised.mean(dim=(0, 2)).abs().max() < 1e-3  # the images' own statistics took them to 0
    assert torch.equal(bn.running_mean, torch.full((4,), 0.5)) and torch.equal(bn.running_var, torch.full((4,), 2.0))
    assert bn.momentum == 0.1 and not bn.training


def test_a_shift_of_a_whole_technical_batch_is_normalised_away():
    net = _net()
    plate_a = torch.randn(32, 2, 8, 8)
    plate_b = plate_a * 1.5 + 2.0  # the same cells, imaged brighter and with an offset
    with own_statistics(net, _chunks(plate_a), net):
        out_a = net(plate_a)
    with own_statistics(net, _chunks(plate_b), net):
        out_b = net(plate_b)
    assert torch.allclose(out_a, out_b, atol=1e-3)
    assert not torch.allclose(net(plate_a), net(plate_b), atol=0.5)  # with the trained statistics they differ


def test_one_lone_image_keeps_the_trained_statistics():
    net = _net()
    net[1].running_mean.fill_(0.25)
    with own_statistics(net, _chunks(torch.randn(1, 2, 8, 8)), net) as seen:
        assert seen == 0
        assert torch.equal(net[1].running_mean, torch.full((4,), 0.25))
