"""The training run's own objects from its config: loggers, callbacks, the trainer, the CPU time estimate's warning
(for :mod:`medviz.training.pipeline`; its data and method come from :mod:`medviz.runs.rebuild`)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from medviz.data.image_arrays import ImageArrays
from medviz.methods.base import ContrastiveMethod
from medviz.runtime import format_duration, resolve_precision, uses_gpu
from medviz.training.callbacks import MapSnapshot, NonFiniteLossGuard, RunState, SaveOnInterrupt
from medviz.training.checkpoints import AtomicCheckpointIO
from medviz.training.cpu_estimate import StepTiming, suggestions, time_training_steps, training_seconds
from medviz.training.sweep import sweep_name

log = logging.getLogger("medviz")

# Above this much measured CPU training time, warn and suggest settings that fit the run.
_CPU_WARN_SECONDS = 30 * 60
# The image side the quickstart's stated minutes hold for (synthblood's 28 px).
_QUICKSTART_SIZE = 28


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """One logger per entry of ``cfg.logger`` (``logger=[csv,wandb]`` combines them).

    In a multirun, loggers with tags (W&B) also get ``sweep-<sweep folder>``, so one sweep's
    runs can be filtered together on the dashboard.
    """
    loggers = []
    sweep = sweep_name()
    for node in cfg.logger.values():
        extra = {"tags": [*node.tags, f"sweep-{sweep}"]} if sweep and "tags" in node else {}
        loggers.append(instantiate(node, **extra))
    return loggers


def snapshot_callback(cfg: DictConfig, data: ImageArrays, run_dir: Path) -> MapSnapshot | None:
    """Map metrics on a fixed, seeded subset during training; None when off or unlabelled."""
    labelled = np.flatnonzero(data.labels >= 0)
    if not cfg.eval.snapshot_every or len(np.unique(data.labels[labelled])) < 2:
        return None
    rng = np.random.default_rng(cfg.seed)
    subset = np.sort(rng.choice(labelled, min(cfg.eval.snapshot_size, len(labelled)), replace=False))
    images = torch.from_numpy(np.ascontiguousarray(data.images[subset].transpose(0, 3, 1, 2)))
    return MapSnapshot(
        images,
        data.labels[subset],
        cfg.eval.snapshot_every,
        k=cfg.eval.knn_k,
        class_names=data.class_names,
        image_dir=run_dir / "maps",
        indices=subset,
    )


def build_trainer(
    cfg: DictConfig,
    module: ContrastiveMethod,
    run_dir: Path,
    loggers: list[Logger],
    extra_callbacks: list[L.Callback] = (),
) -> L.Trainer:
    gpu = uses_gpu(str(cfg.trainer.accelerator))
    callbacks: list[L.Callback] = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="epoch{epoch:04d}",
            auto_insert_metric_name=False,
            every_n_epochs=cfg.checkpoint_every,
            save_top_k=-1 if cfg.checkpoint_every else 0,
            save_last=True,
        ),
        RunState(method=str(cfg.method.name), backbone=str(cfg.backbone.name)),
        SaveOnInterrupt(run_dir / "checkpoints"),
        # On a GPU the flags are read where the logger reads values anyway; on the CPU every step.
        NonFiniteLossGuard(check_every=cfg.trainer.get("log_every_n_steps", 10) if gpu else 1),
    ]
    callbacks.extend(extra_callbacks)
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    if trainer_cfg.get("enable_progress_bar", True):
        # The bar reads the logged values (a host-device sync) only when it redraws.
        callbacks.append(TQDMProgressBar(refresh_rate=cfg.speed.progress_refresh_steps))
    precision = resolve_precision(trainer_cfg.pop("precision"), str(cfg.trainer.accelerator))
    if trainer_cfg.get("sync_batchnorm") and not gpu:
        log.info("SyncBatchNorm needs GPUs: on CPU each DDP process normalises over its own share of the batch")
        trainer_cfg["sync_batchnorm"] = False
    make_trainer = instantiate(OmegaConf.create(trainer_cfg))  # a partial: the run supplies the rest
    return make_trainer(
        max_epochs=module.total_epochs,
        precision=precision,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=loggers,
        default_root_dir=str(run_dir),
    )


def warn_if_slow_on_cpu(
    cfg: DictConfig, module: ContrastiveMethod, data: ImageArrays, experiment: str | None = None
) -> StepTiming | None:
    """On a CPU-only machine, measure the run's training time and say it; when even its low end is
    above half an hour, warn and say what fits. Returns the probe's timings (None on a GPU), which
    :class:`TrainingClock` re-scales as the run trains.

    The advice is sized on the low end of the estimate, so it never cuts a run more than the
    fastest measured steps call for (a busy machine's slow probe once advised cutting a 12-minute
    run to 12 epochs). ``experiment`` is the preset chosen (``experiment=...``), if any.
    """
    if uses_gpu(str(cfg.trainer.accelerator)):
        return None
    batch = min(int(cfg.batch_size), len(data))
    shape = (data.channels, data.image_size, data.image_size)
    timing = time_training_steps(module, shape, batch, dtype=torch.from_numpy(data.images[:1]).dtype)
    stages = module.schedule.stages
    images_per_epoch = len(data) // batch * batch
    low, typical, high = training_seconds(timing, images_per_epoch, [s.epochs for s in stages])
    spread = (
        f"{format_duration(low)} to {format_duration(high)}: " if format_duration(low) != format_duration(high) else ""
    )
    run = (
        f"{module.total_epochs} epochs x {len(data):,} images of {data.image_size}x{data.image_size} px, "
        f"{data.channels} channel{'s' if data.channels > 1 else ''}, backbone {cfg.backbone.name}"
    )
    measured = (
        f"about {format_duration(typical)} of training steps on this CPU ({spread}{timing.steps} "
        f"timed steps of {timing.batch} images per stage after warm-up)"
    )
    log.info(f"no GPU: this run ({run}) needs {measured}")
    if experiment == "quickstart" and data.image_size != _QUICKSTART_SIZE:
        log.info(
            f"experiment=quickstart: its few minutes (README) are for {_QUICKSTART_SIZE}x{_QUICKSTART_SIZE} px images; "
            f"at {data.image_size}x{data.image_size} px it is the {format_duration(typical)} measured above"
        )
    if low <= _CPU_WARN_SECONDS:
        return timing
    ideas = suggestions(
        low,
        _CPU_WARN_SECONDS / 2,
        experiment=experiment,
        backbone=str(cfg.backbone.name),
        n_images=len(data),
        epochs=[s.epochs for s in stages],
    )
    hint = f" To finish in about 15 min, try: {'; or '.join(ideas)}." if ideas else ""
    log.warning(f"no GPU: this run ({run}) needs {measured}, before evaluation.{hint}")
    return timing
