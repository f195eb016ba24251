"""How long a run will take on this CPU, measured before it starts, and what would make it fit.

One early step says little: the first steps pay one-off costs (memory, kernel choice) and a tiny
probe batch costs far more per image than the run's batches. So the probe warms up, sizes its batch
towards the run's (as large as fits in a fraction of a second per step), times several steps and
reports the spread. Stages that train only the output layer (t-SimCNE's stage 2) are costed as a
forward pass, which is what they mostly are.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from medviz.methods.base import ContrastiveMethod


@dataclass(frozen=True)
class StepTiming:
    """Seconds per image of a training step (augment two views, forward, backward) at ``batch``."""

    batch: int
    per_image: tuple[float, ...]  # one value per timed step
    forward_per_image: float  # augment and forward only (for stages that train the output layer)

    @property
    def typical(self) -> float:
        return statistics.median(self.per_image)


def _step(module: ContrastiveMethod, images: torch.Tensor, backward: bool = True) -> float:
    start = time.perf_counter()
    with torch.set_grad_enabled(backward):
        views = torch.cat([module.preprocess.normalise(module.augment(images)) for _ in range(2)])
        out = module(views).float().pow(2).mean()
        if backward:
            out.backward()
    return time.perf_counter() - start


def time_training_steps(
    module: ContrastiveMethod,
    image_shape: tuple[int, int, int],
    batch_size: int,
    steps: int = 5,
    warmup: int = 4,
    step_seconds: float = 0.25,
    max_batch: int = 256,
) -> StepTiming:
    """Time ``steps`` training steps after ``warmup`` ones, at a batch sized to take about ``step_seconds``.

    The module is left as it was: gradients are discarded, no optimiser steps, the state (with
    BatchNorm's running statistics) is restored, and the random generators are as before.
    """
    # The probe must not change the run: no random numbers drawn from its generators either.
    with torch.random.fork_rng():
        return _time_steps(module, image_shape, batch_size, steps, warmup, step_seconds, max_batch)


def _time_steps(
    module: ContrastiveMethod,
    image_shape: tuple[int, int, int],
    batch_size: int,
    steps: int,
    warmup: int,
    step_seconds: float,
    max_batch: int,
) -> StepTiming:
    state = {k: v.clone() for k, v in module.state_dict().items()}
    module.train()
    largest = max(2, min(batch_size, max_batch))
    images = torch.randint(0, 256, (largest, *image_shape), dtype=torch.uint8)
    small = min(16, largest)
    for _ in range(warmup):  # a new module's first steps run several times slower (measured: 4 steps)
        _step(module, images[:small])
    first = _step(module, images[:small])
    batch = int(min(largest, max(small, small * step_seconds / max(first, 1e-6))))
    _step(module, images[:batch])  # warm-up at the probe size
    per_image = tuple(_step(module, images[:batch]) / batch for _ in range(steps))
    forward = min(_step(module, images[:batch], backward=False) for _ in range(2)) / batch
    module.zero_grad(set_to_none=True)
    module.load_state_dict(state)
    return StepTiming(batch=batch, per_image=per_image, forward_per_image=forward)


def training_seconds(timing: StepTiming, images_per_epoch: int, full_epochs: int, output_epochs: int) -> list[float]:
    """(low, typical, high) seconds of training steps for the run, from the spread of the timed steps."""

    def total(per_image: float) -> float:
        return images_per_epoch * (full_epochs * per_image + output_epochs * timing.forward_per_image)

    return [total(min(timing.per_image)), total(timing.typical), total(max(timing.per_image))]


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
