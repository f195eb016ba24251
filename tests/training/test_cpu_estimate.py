"""The CPU time estimate: measured after warm-up at a batch near the run's, with advice that fits the run."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from medviz.models.preprocess import Preprocess
from medviz.training.cpu_estimate import StepTiming, suggestions, time_training_steps, training_seconds


class SlowStart(nn.Module):
    """A stand-in method whose first four steps are slow, as a new network's are on a CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2), nn.BatchNorm1d(2))
        self.preprocess = Preprocess([0.5] * 3, [0.25] * 3)
        self.calls = 0

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls <= 8:  # two views per step: the first four steps
            time.sleep(0.05)
        return images.float() / 255

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_the_slow_first_steps_are_not_what_is_timed():
    module = SlowStart()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    generator = torch.get_rng_state()
    timing = time_training_steps(module, (3, 8, 8), batch_size=64)
    assert torch.equal(torch.get_rng_state(), generator)  # the run draws the same random numbers after it
    assert max(timing.per_image) * timing.batch < 0.05  # none of the timed steps is a slow one
    assert timing.batch == 64  # fast steps: the probe grows to the run's batch
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())  # BatchNorm stats restored
    assert all(p.grad is None for p in module.parameters())


def test_output_only_stages_cost_a_forward_pass():
    timing = StepTiming(batch=10, per_image=(2e-3, 3e-3, 4e-3), forward_per_image=1e-3)
    low, typical, high = training_seconds(timing, images_per_epoch=1000, full_epochs=10, output_epochs=5)
    assert [low, typical, high] == pytest.approx([25.0, 35.0, 45.0])


def test_advice_fits_the_run_and_never_repeats_its_own_preset():
    on_quickstart = suggestions(7200, 900, "quickstart", "tinycnn", 17_092, [100, 30, 70])
    assert not any("experiment=quickstart" in idea for idea in on_quickstart)
    assert "dataset.n_images=2100 (a class-stratified subset of the 17,092 images)" in on_quickstart
    assert "schedule.epochs=[12,4,9]" in on_quickstart
    paper = suggestions(4e5, 900, None, "resnet18", 10_000, [1000, 50, 450])
    assert paper[0].startswith("experiment=quickstart")
    simclr = suggestions(3600, 900, None, "tinycnn", 400, [200])
    assert simclr == ["schedule.epochs=50"]  # 100 images would be too few to subset to
