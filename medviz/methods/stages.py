"""Everything about training stages: Stage, Schedule, the built-in schedules and the callback that switches.

A schedule is a list of stages; each stage gets a fresh optimiser and its own cosine learning-rate
schedule with linear warmup, stepped once per epoch (as in the reference code; docs/reproducing.md).
Every method trains through a Schedule: t-SimCNE through the paper's three stages or dimension
annealing, SimCLR and BYOL through one stage (:func:`single_stage`). Plain data only: the callback
that moves a method from stage to stage is :class:`medviz.methods.base.StageSwitch`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from medviz.errors import ConfigError

#: Stage outputs whose first two dimensions are the 2-D map.
MAP_OUTPUTS = frozenset({"2d", "anneal"})


@dataclass(frozen=True)
class Stage:
    """One stage of training.

    Attributes:
        name: shown in logs and the progress bar.
        epochs: length of the stage.
        lr_scale: the stage's peak lr as a multiple of the base lr (0.03 · b / 256).
        warmup_epochs: linear warmup from 0; the first warmup epoch runs at lr 0, the last at the peak (ref).
        output: ``high`` (128-D), ``2d`` (the new 2-D layer) or ``anneal`` (128-D whose
            dimensions 3..128 fade out over training; the map is read from the first two).
        trains: ``all`` parameters, or only the ``output`` layer (t-SimCNE stage 2).
    """

    name: str
    epochs: int
    lr_scale: float
    warmup_epochs: int
    output: Literal["high", "2d", "anneal"]
    trains: Literal["all", "output"]

    def lr_factor(self, epoch_in_stage: int) -> float:
        """Multiplier on the stage's peak lr at the given epoch of this stage, as the reference
        code's schedule: warmup ``linspace(0, 1, w)`` (the first warmup epoch at 0, the last already
        at the peak), then ``0.5 * (1 + cos(pi * j / (1 + n - w)))`` for j = 0, 1, ... -- its
        decay table has one entry more than the stage has epochs (the reference steps its
        scheduler once when it is built), so a stage ends a little above 0."""
        w, n = self.warmup_epochs, self.epochs
        if epoch_in_stage < w:
            return epoch_in_stage / (w - 1) if w > 1 else 0.0
        return 0.5 * (1.0 + math.cos(math.pi * (epoch_in_stage - w) / (1 + n - w)))


@dataclass(frozen=True)
class Schedule:
    """Stages in order, plus the annealing window for ``anneal`` stages (fractions of training)."""

    stages: tuple[Stage, ...]
    anneal_window: tuple[float, float] = (0.0, 1.0)

    @property
    def total_epochs(self) -> int:
        return sum(s.epochs for s in self.stages)

    @property
    def stage_ends(self) -> set[int]:
        """Epoch counts (1-based) at which a stage ends."""
        return {self.stage_start(index + 1) for index in range(len(self.stages))}

    def stage_start(self, index: int) -> int:
        return sum(s.epochs for s in self.stages[:index])

    def stage_at(self, epoch: int) -> int:
        """Index of the stage that epoch ``epoch`` (0-based) belongs to; the last past the end."""
        for index in range(len(self.stages)):
            if epoch < self.stage_start(index + 1):
                return index
        return len(self.stages) - 1

    def dim_scale(self, progress: float) -> float:
        """Weight of output dimensions 3..128 at ``progress`` in [0, 1] of training.

        1 before the annealing window, 0 after it, a cosine ramp from 1 to 0 inside it.
        """
        start, end = self.anneal_window
        if progress <= start:
            return 1.0
        if progress >= end:
            return 0.0
        return 0.5 * (1.0 + math.cos(math.pi * (progress - start) / (end - start)))


_EXAMPLE = {"epochs": (1000, 50, 450), "lr_scale": (1.0, 1.0, 1e-3), "warmup_epochs": (10, 0, 10)}


def three_stage(
    epochs: Sequence[int] = (1000, 50, 450),
    lr_scale: Sequence[float] = (1.0, 1.0, 1e-3),
    warmup_epochs: Sequence[int] = (10, 0, 10),
) -> Schedule:
    """The paper's t-SimCNE schedule (Böhm et al. 2023; paper §3): 1000 / 50 / 450 epochs.

    Stage 1 trains everything with a 128-D output; stage 2 trains only a new 2-D output layer;
    stage 3 trains everything, 2-D, at lr/1000.
    """
    for name, values in (("epochs", epochs), ("lr_scale", lr_scale), ("warmup_epochs", warmup_epochs)):
        if isinstance(values, (str, int, float)) or len(values) != 3:
            raise ConfigError(
                f"schedule.{name}={values}: the three-stage schedule needs one value per stage, e.g. "
                f"schedule.{name}={list(_EXAMPLE[name])}; for one stage of training use schedule=single"
            )
    if any(e < 1 for e in epochs):
        raise ValueError(f"every stage needs at least 1 epoch, got {list(epochs)}")
    names = ("stage1-128d", "stage2-2d-head", "stage3-2d")
    outputs = ("high", "2d", "2d")
    trains = ("all", "output", "all")
    return Schedule(
        tuple(
            Stage(n, int(e), float(lr), int(w), o, t)
            for n, e, lr, w, o, t in zip(names, epochs, lr_scale, warmup_epochs, outputs, trains, strict=True)
        )
    )


def dimension_anneal(
    epochs: int = 1500,
    warmup_epochs: int = 10,
    anneal_start: float = 0.25,
    anneal_end: float = 0.75,
) -> Schedule:
    """One stage with a 128-D output whose dimensions 3..128 fade to zero over training.

    The newer schedule of the reference package: training starts as stage 1 (all 128 dimensions),
    dimensions 3..128 are scaled down on a cosine from ``anneal_start`` to ``anneal_end`` (fractions
    of training) and the rest is pure 2-D training. One optimiser, no frozen phase: on short
    budgets every update goes to the whole network.
    """
    if not 0.0 <= anneal_start < anneal_end <= 1.0:
        raise ValueError(f"need 0 <= anneal_start < anneal_end <= 1, got {anneal_start}, {anneal_end}")
    stage = Stage("anneal", int(epochs), 1.0, int(warmup_epochs), "anneal", "all")
    return Schedule((stage,), anneal_window=(anneal_start, anneal_end))


def single_stage(epochs: int = 1000, warmup_epochs: int = 10) -> Schedule:
    """One stage training everything with the 128-D output: SimCLR's and BYOL's schedule (paper §4:
    1000 epochs, warmup as t-SimCNE's stage 1)."""
    if epochs < 1:
        raise ValueError(f"the schedule needs at least 1 epoch, got {epochs}")
    return Schedule((Stage("training", int(epochs), 1.0, int(warmup_epochs), "high", "all"),))
