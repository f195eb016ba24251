"""The CPU time estimate: the run's own step per stage after warm-up, ranges that held on recorded runs,
re-estimates from the run's epochs, and advice that never cuts a run more than its fastest steps call for."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from medviz.data.synthetic.synthblood import load_synthblood
from medviz.runs.rebuild import build_method
from medviz.training import build as build_module
from medviz.training import cpu_estimate
from medviz.training.build import warn_if_slow_on_cpu
from medviz.training.cpu_estimate import (
    PACE_SPREAD,
    StageTiming,
    StepTiming,
    remaining_seconds,
    suggestions,
    time_training_steps,
    timing_from_record,
    timing_record,
    training_seconds,
)
from tests.helpers.config import TINY, compose_config

RECORDED = sorted((Path(__file__).parent / "recorded_runs").glob("*.json"))


def tiny_tsimcne(schedule: str = "schedule.epochs=[4,2,3]"):
    cfg = compose_config([*TINY, schedule])
    data = load_synthblood(n_images=32, seed=0)
    return build_method(cfg, data.stats()), data


class FakeClock:
    """A clock that only the stand-in augmentation moves: step times independent of the machine's load."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class SlowAtFirst(nn.Module):
    """The method's augmentation; its first four steps take 100 s on ``clock``, later ones 10 ms,
    as a new network's first steps are slow on a CPU."""

    def __init__(self, augment: nn.Module, clock: FakeClock) -> None:
        super().__init__()
        self.inner = augment
        self.clock = clock
        self.calls = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.clock.now += 50.0 if self.calls <= 8 else 0.005  # two views per step
        return self.inner(images)


def test_the_slow_first_steps_are_not_what_is_timed(monkeypatch):
    module, _ = tiny_tsimcne()
    clock = FakeClock()
    monkeypatch.setattr(cpu_estimate, "time", clock)
    module.augment = SlowAtFirst(module.augment, clock)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    generator = torch.get_rng_state()
    timing = time_training_steps(module, (3, 28, 28), batch_size=32)
    assert torch.equal(torch.get_rng_state(), generator)  # the run draws the same random numbers after it
    assert module.augment.calls > 8
    assert all(stage.per_image == pytest.approx((0.01 / 32,) * 5) for stage in timing.stages)  # no slow step timed
    assert timing.batch == 32  # fast steps: the probe runs at the run's batch
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())  # BatchNorm stats restored
    assert module.current_stage == 0 and all(p.grad is None for p in module.parameters())
    assert all(p.requires_grad for p in module.backbone.parameters())  # stage 1 trains everything again


def test_each_stage_is_timed_on_its_own_step(monkeypatch):
    module, _ = tiny_tsimcne("schedule.epochs=[4,2,3]")
    clock = FakeClock()
    monkeypatch.setattr(cpu_estimate, "time", clock)
    seen = []
    loss = module.compute_loss

    def costed(view_a: torch.Tensor, view_b: torch.Tensor) -> dict:
        # each stage's own cost on the fake clock: what is timed must be the stage the step ran in
        seen.append(
            (module.current_stage, module.stage.output, any(p.requires_grad for p in module.backbone.parameters()))
        )
        clock.now += {0: 0.010, 1: 0.004, 2: 0.008}[module.current_stage]
        return loss(view_a, view_b)

    monkeypatch.setattr(module, "compute_loss", costed)
    timing = time_training_steps(module, (3, 28, 28), batch_size=32, warmup=1)
    assert [stage.typical for stage in timing.stages] == pytest.approx([0.010 / 32, 0.004 / 32, 0.008 / 32])
    # stage 2 trains the 2-D layer only; stages 1 and 3 train all, with 128-D and 2-D outputs
    assert {(1, "2d", False), (0, "high", True), (2, "2d", True)} <= set(seen)
    assert module.current_stage == 0 and all(p.requires_grad for p in module.backbone.parameters())


def test_the_probe_times_the_run_s_stored_type():
    module, _ = tiny_tsimcne()
    seen = []
    to_unit = module.preprocess.to_unit
    module.preprocess.to_unit = lambda images, rows=None: seen.append(images.dtype) or to_unit(images, rows)
    time_training_steps(module, (3, 28, 28), batch_size=8, dtype=torch.uint16, steps=1, warmup=1)
    assert set(seen) == {torch.uint16}


def test_the_range_spans_the_fastest_and_slowest_steps_of_each_stage():
    timing = StepTiming(
        stages=(
            StageTiming(batch=10, per_image=(2e-3, 3e-3, 4e-3)),
            StageTiming(batch=10, per_image=(1e-3, 1e-3, 1e-3)),
        )
    )
    low, typical, high = training_seconds(timing, images_per_epoch=1000, stage_epochs=[10, 5])
    assert [low, typical, high] == pytest.approx([25.0, 35.0, 45.0])
    assert timing_from_record(json.loads(json.dumps(timing_record(timing, 1000, [10, 5])))) == timing


def test_re_estimates_scale_the_probe_by_the_run_s_own_epochs():
    timing = StepTiming(stages=(StageTiming(10, (1e-3,)), StageTiming(10, (0.5e-3,))))
    # the probe said 1 s per stage-1 epoch; the machine now takes 2 s (after a slow first epoch)
    low, typical, high = remaining_seconds(timing, 1000, [10, 10], [9.0, 2.0, 2.0, 2.0])
    assert typical == pytest.approx(2 * (6 * 1.0 + 10 * 0.5))
    assert high == pytest.approx(typical * PACE_SPREAD[1])  # steady epochs: the spread around their pace
    assert low == pytest.approx((6 * 1.0 + 10 * 0.5) * PACE_SPREAD[0])  # down to the pace the probe saw
    # a resumed run: its epochs start at epoch 12, in stage 2, spread between 0.5 and 1.5 s
    low, typical, high = remaining_seconds(timing, 1000, [10, 10], [5.0, 0.5, 1.0, 1.5], first_epoch=12)
    assert [low, typical, high] == pytest.approx([4 * 0.5 * PACE_SPREAD[0], 4 * 1.0, 4 * 1.5])


def test_the_recorded_runs_are_there():
    assert len(RECORDED) >= 3  # idle, busy, 64 px


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_recorded_runs_fell_within_their_printed_ranges(path):
    """Real quickstart runs on a 2-core machine (idle, busy, larger images): probe and epoch times as the
    run kept them (benchmarks/cpu_estimate.py records them)."""
    run = json.loads(path.read_text())
    estimate, seconds = run["estimate"], run["epoch_seconds"]
    timing, per_epoch, stage_epochs = (
        timing_from_record(estimate),
        estimate["images_per_epoch"],
        estimate["stage_epochs"],
    )
    low, _, high = training_seconds(timing, per_epoch, stage_epochs)
    assert low <= sum(seconds) <= high
    start = 0
    for epochs in stage_epochs:  # the re-estimate said after the third epoch of each stage
        low, _, high = remaining_seconds(timing, per_epoch, stage_epochs, seconds[: start + 3])
        assert low <= sum(seconds[start + 3 :]) <= high
        start += epochs


def stub_timing(scale: float) -> StepTiming:
    """Three stages, each timed at (0.2, 0.4, 0.6) x ``scale`` seconds per image."""
    return StepTiming(stages=tuple(StageTiming(32, (0.2 * scale, 0.4 * scale, 0.6 * scale)) for _ in range(3)))


def test_advice_is_sized_on_the_fastest_steps(monkeypatch, caplog):
    cfg = compose_config([*TINY, "schedule.epochs=[40,20,30]"])
    data = load_synthblood(n_images=32, seed=0, size=32)
    module = build_method(cfg, data.stats())
    caplog.set_level(logging.INFO, logger="medviz")
    # 32 images x 90 epochs at scale 2.5: 24 min at the fastest steps, 48 min at the median
    monkeypatch.setattr(build_module, "time_training_steps", lambda *args, **kwargs: stub_timing(2.5))
    assert warn_if_slow_on_cpu(cfg, module, data, experiment="quickstart") == stub_timing(2.5)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # the fastest steps fit: no cut advised
    assert "quickstart" in caplog.text and "28x28 px" in caplog.text and "at 32x32 px it is the 48 min" in caplog.text
    caplog.clear()
    monkeypatch.setattr(build_module, "time_training_steps", lambda *args, **kwargs: stub_timing(5))
    warn_if_slow_on_cpu(cfg, module, data, experiment="quickstart")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    share = 15 * 60 / (32 * 90 * 0.2 * 5)  # the budget over the low end (48 min), not the median (96 min)
    assert f"schedule.epochs=[{round(40 * share)},{round(20 * share)},{round(30 * share)}]" in warning


def test_advice_fits_the_run_and_never_repeats_its_own_preset():
    on_quickstart = suggestions(7200, 900, "quickstart", "tinycnn", 17_092, [100, 30, 70])
    assert not any("experiment=quickstart" in idea for idea in on_quickstart)
    assert "dataset.n_images=2100 (a class-stratified subset of the 17,092 images)" in on_quickstart
    assert "schedule.epochs=[12,4,9]" in on_quickstart
    paper = suggestions(4e5, 900, None, "resnet18", 10_000, [1000, 50, 450])
    assert paper[0].startswith("experiment=quickstart")
    simclr = suggestions(3600, 900, None, "tinycnn", 400, [200])
    assert simclr == ["schedule.epochs=50"]  # 100 images would be too few to subset to
