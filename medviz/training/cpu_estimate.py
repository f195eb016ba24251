"""How long a run will take on this CPU: measured before it starts, re-measured on its own epochs.

Before training, a probe runs the run's own training step -- stored images to unit range, two
augmented views, channels-last when the run uses it, the method's loss, backward, the optimiser's
step -- for each kind
of stage of the schedule, because stages cost different amounts (t-SimCNE's stage 1 scores 128-D
outputs, stage 3 2-D ones; stage 2 back-propagates into its output layer only). One early step
says little: the first steps pay one-off costs and a small batch costs more per image than the
run's, so the probe warms up, runs at the run's batch where a step fits in about a second, and
reports the spread of several steps.

A probe sees the machine for a few seconds; a shared machine's load changes over minutes. So once
the run has trained a few epochs, :func:`remaining_seconds` re-estimates from the run's own epoch
times (the callback :class:`medviz.training.callbacks.TrainingClock` says it in the log).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from medviz.methods.base import ContrastiveMethod

#: How far a run's pace strayed from its probe's median step on recorded 2-core runs, idle and busy
#: (tests/training/recorded_runs/; docs/speed.md): every printed range spans at least this much.
PACE_SPREAD = (0.8, 1.25)


@dataclass(frozen=True)
class StageTiming:
    """Seconds per image of the training steps timed for one stage, at ``batch`` images per step."""

    batch: int
    per_image: tuple[float, ...]  # one value per timed step

    @property
    def typical(self) -> float:
        return statistics.median(self.per_image)


@dataclass(frozen=True)
class StepTiming:
    """The probe's timings, one per stage of the schedule, in the schedule's order."""

    stages: tuple[StageTiming, ...]

    @property
    def batch(self) -> int:
        return self.stages[0].batch

    @property
    def steps(self) -> int:
        return len(self.stages[0].per_image)


def _step(module: ContrastiveMethod, images: torch.Tensor, optimiser: torch.optim.Optimizer) -> float:
    """Seconds of one training step (views, loss, backward, optimiser step) on ``images`` (B, C, H, W) as stored."""
    start = time.perf_counter()
    optimiser.zero_grad(set_to_none=True)
    loss = module.compute_loss(*module.training_views(images))["loss"]
    loss.backward()
    optimiser.step()
    return time.perf_counter() - start


def _optimiser(module: ContrastiveMethod) -> torch.optim.Optimizer:
    """The run's optimiser over the current stage's parameters (its steps are undone with the module's state)."""
    return module.make_optimizer(module.trainable_parameters(), lr=module.lr * module.stage.lr_scale)


def time_training_steps(
    module: ContrastiveMethod,
    image_shape: tuple[int, int, int],
    batch_size: int,
    dtype: torch.dtype = torch.uint8,
    steps: int = 5,
    warmup: int = 4,
    step_seconds: float = 1.0,
) -> StepTiming:
    """Time ``steps`` training steps of every stage after warm-up, at the run's batch where a step takes
    at most about ``step_seconds`` (else the largest batch that does).

    ``image_shape`` is (C, H, W) and ``dtype`` the stored images' type. The module is left as it
    was: gradients are discarded, the state (weights the probe's optimiser steps moved, BatchNorm's
    running statistics) and the current stage are restored, and the random generators are as before.
    """
    # The probe must not change the run: no random numbers drawn from its generators either.
    with torch.random.fork_rng():
        state = {k: v.clone() for k, v in module.state_dict().items()}
        stage = module.current_stage
        try:
            return _time_stages(module, image_shape, batch_size, dtype, steps, warmup, step_seconds)
        finally:
            module.zero_grad(set_to_none=True)
            module.load_state_dict(state)
            module.enter_stage(stage)


def _time_stages(
    module: ContrastiveMethod,
    image_shape: tuple[int, int, int],
    batch_size: int,
    dtype: torch.dtype,
    steps: int,
    warmup: int,
    step_seconds: float,
) -> StepTiming:
    if module.channels_last:  # as on_fit_start does: convolutions run (and are timed) in the run's layout
        module.to(memory_format=torch.channels_last)
    module.train()
    largest = max(2, batch_size)
    if dtype.is_floating_point:
        images = torch.rand((largest, *image_shape)).to(dtype)
    else:
        high = 256 if dtype == torch.uint8 else 65536
        images = torch.randint(0, high, (largest, *image_shape), dtype=torch.int32).to(dtype)
    small = min(16, largest)
    module.enter_stage(0)
    optimiser = _optimiser(module)
    for _ in range(warmup):  # a new module's first steps run several times slower (measured: 4 steps)
        _step(module, images[:small], optimiser)
    first = _step(module, images[:small], optimiser)
    batch = int(min(largest, max(small, small * step_seconds / max(first, 1e-6))))
    timings: dict[tuple[str, str], StageTiming] = {}
    for index, stage in enumerate(module.schedule.stages):
        kind = (stage.output, stage.trains)
        if kind not in timings:  # stages of the same kind cost the same
            module.enter_stage(index)
            optimiser = _optimiser(module)
            _step(module, images[:batch], optimiser)  # warm-up at the probe size, in this stage
            per_image = tuple(_step(module, images[:batch], optimiser) / batch for _ in range(steps))
            timings[kind] = StageTiming(batch=batch, per_image=per_image)
            module.zero_grad(set_to_none=True)
    return StepTiming(stages=tuple(timings[(s.output, s.trains)] for s in module.schedule.stages))


def training_seconds(timing: StepTiming, images_per_epoch: int, stage_epochs: Sequence[int]) -> list[float]:
    """(low, typical, high) seconds of training steps for stages of ``stage_epochs`` epochs each: the
    median timed step of each stage, and a range from the fastest and slowest timed steps, at least
    :data:`PACE_SPREAD` around the median (a few seconds of probing do not see a machine's pace over minutes)."""
    pairs = list(zip(timing.stages, stage_epochs, strict=True))
    low, typical, high = (
        images_per_epoch * sum(epochs * pick(stage.per_image) for stage, epochs in pairs)
        for pick in (min, statistics.median, max)
    )
    return [min(low, typical * PACE_SPREAD[0]), typical, max(high, typical * PACE_SPREAD[1])]


def remaining_seconds(
    timing: StepTiming,
    images_per_epoch: int,
    stage_epochs: Sequence[int],
    epoch_seconds: Sequence[float],
    first_epoch: int = 0,
) -> list[float]:
    """(low, typical, high) seconds the run still needs, from the seconds its epochs took so far.

    ``epoch_seconds`` holds the epochs this process trained, in order, from epoch ``first_epoch``
    (0-based; later than 0 for a resumed run). Each epoch, against the probe's time for its stage,
    says how much faster or slower the machine runs than the probe saw; the epochs still to come
    keep the probe's proportions between stages, scaled by the median factor of the current
    stage's epochs (the machine as it is now), and the range by the smallest and largest factor of
    any epoch so far (a shared machine's load comes and goes), at least :data:`PACE_SPREAD` around
    the median and reaching down to the probe's own pace. The first epoch of a stage (or of a
    resumed run) is left out when there are others: it pays one-off costs.
    """
    if not epoch_seconds:
        raise ValueError("remaining_seconds needs at least one measured epoch")
    done = first_epoch + len(epoch_seconds)
    starts = [sum(stage_epochs[:i]) for i in range(len(stage_epochs))]
    stage_of = [i for i, epochs in enumerate(stage_epochs) for _ in range(epochs)]
    # each epoch against what the probe said for its stage: how much faster or slower the machine runs now
    factors = {
        epoch: seconds / (images_per_epoch * timing.stages[stage_of[epoch]].typical)
        for epoch, seconds in enumerate(epoch_seconds, start=first_epoch)
    }
    firsts = {epoch for epoch in factors if epoch in starts or epoch == first_epoch}
    steady = {epoch: f for epoch, f in factors.items() if epoch not in firsts} or factors
    current = stage_of[min(done, len(stage_of)) - 1]
    recent = [f for epoch, f in steady.items() if stage_of[epoch] == current] or list(steady.values())
    left = [max(0, start + epochs - max(done, start)) for start, epochs in zip(starts, stage_epochs, strict=True)]
    at_probe = images_per_epoch * sum(n * stage.typical for stage, n in zip(timing.stages, left, strict=True))
    pace = statistics.median(recent)
    # The pace the probe saw (factor 1) is a pace this machine had: load that came may go again.
    low = min(min(steady.values()), min(pace, 1.0) * PACE_SPREAD[0])
    high = max(max(steady.values()), pace * PACE_SPREAD[1])
    return [at_probe * low, at_probe * pace, at_probe * high]


def suggestions(
    estimate: float,
    budget: float,
    experiment: str | None,
    backbone: str,
    n_images: int,
    epochs: list[int],
) -> list[str]:
    """Settings that bring a run estimated at ``estimate`` seconds to about ``budget``, fitting this run."""
    ideas = []
    if experiment != "quickstart" and backbone != "tinycnn":
        ideas.append("experiment=quickstart (tinycnn, 2,000 images, 200 epochs; works with any dataset)")
    elif backbone != "tinycnn":
        ideas.append("backbone=tinycnn (the CPU network)")
    share = budget / estimate
    fewer = int(n_images * share) // 100 * 100
    if fewer >= 500:
        ideas.append(f"dataset.n_images={fewer} (a class-stratified subset of the {n_images:,} images)")
    shorter = [max(1, round(e * share)) for e in epochs]
    if sum(shorter) >= 10:
        ideas.append(
            f"schedule.epochs=[{','.join(map(str, shorter))}]" if len(epochs) > 1 else f"schedule.epochs={shorter[0]}"
        )
    return ideas


def timing_record(timing: StepTiming, images_per_epoch: int, stage_epochs: Sequence[int]) -> dict:
    """The probe's timings as plain JSON values (a run keeps them in ``logs/cpu_estimate.json``)."""
    low, typical, high = training_seconds(timing, images_per_epoch, stage_epochs)
    return {
        "images_per_epoch": images_per_epoch,
        "stage_epochs": list(stage_epochs),
        "stages": [{"batch": s.batch, "per_image_seconds": list(s.per_image)} for s in timing.stages],
        "estimate_seconds": {"low": low, "typical": typical, "high": high},
    }


def timing_from_record(record: dict) -> StepTiming:
    """The :class:`StepTiming` kept by :func:`timing_record`."""
    return StepTiming(
        stages=tuple(
            StageTiming(batch=int(s["batch"]), per_image=tuple(float(x) for x in s["per_image_seconds"]))
            for s in record["stages"]
        )
    )
