"""The run's own clock: each epoch's seconds in the log, and the time left, re-estimated as it trains."""

from __future__ import annotations

import logging
import time

import lightning as L

from medviz.methods.base import ContrastiveMethod
from medviz.runtime import format_duration
from medviz.training.cpu_estimate import StepTiming, remaining_seconds

log = logging.getLogger("medviz")


class TrainingClock(L.Callback):
    """Logs ``time/epoch_seconds`` (the epoch's training loop, wall clock) every epoch and, on a CPU,
    says once per stage how long the run still needs, from its own epochs.

    The estimate before training (:func:`medviz.training.cpu_estimate.time_training_steps`) sees the
    machine for a few seconds; this one sees it while the run trains, so a machine that became
    busier or quieter shows here. It is said after the third epoch of each stage (the first epoch
    of a stage pays one-off costs), and only when at least ``min_left_seconds`` remain.

    Args:
        timing: the probe's step timings (one per stage), or None to log epoch times only.
        images_per_epoch: images the run trains on per epoch (whole batches).
        min_left_seconds: below this, nothing is said.
    """

    def __init__(self, timing: StepTiming | None, images_per_epoch: int, min_left_seconds: float = 60.0) -> None:
        self.timing = timing
        self.images_per_epoch = images_per_epoch
        self.min_left_seconds = min_left_seconds
        self.epoch_seconds: list[float] = []
        self.first_epoch: int | None = None
        self._start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: ContrastiveMethod) -> None:
        if self.first_epoch is None:
            self.first_epoch = trainer.current_epoch
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: ContrastiveMethod) -> None:
        seconds = time.perf_counter() - self._start
        self.epoch_seconds.append(seconds)
        pl_module.log("time/epoch_seconds", seconds)
        stage_epochs = [stage.epochs for stage in pl_module.schedule.stages]
        epoch = trainer.current_epoch
        stage = pl_module.schedule.stage_at(epoch)
        since = epoch - max(pl_module.schedule.stage_start(stage), self.first_epoch or 0)
        if self.timing is None or since != 2 or trainer.global_rank != 0:
            return
        low, typical, high = remaining_seconds(
            self.timing, self.images_per_epoch, stage_epochs, self.epoch_seconds, first_epoch=self.first_epoch or 0
        )
        if typical < self.min_left_seconds:
            return
        spread = f" ({format_duration(low)} to {format_duration(high)})" if low != high else ""
        log.info(
            f"epoch {epoch + 1} of {sum(stage_epochs)}: its epochs take {seconds:.1f} s here; "
            f"about {format_duration(typical)}{spread} of training left"
        )
