"""Building a run from its config: data, method, loggers, callbacks, trainer (for :mod:`medviz.training.pipeline`)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from medviz.data.arrays import ImageArrays, ImageStats
from medviz.data.channels import configure_channels
from medviz.data.memory import in_memory_if_it_fits, ram_budget
from medviz.data.qc_inject import inject
from medviz.data.subset import stratified_subset
from medviz.errors import ConfigError, MedvizError
from medviz.instantiate import build
from medviz.methods.base import ContrastiveMethod
from medviz.models.preprocess import Preprocess
from medviz.training.callbacks import MapSnapshot, NonFiniteLossGuard, RunState, SaveOnInterrupt
from medviz.training.checkpoints import AtomicCheckpointIO
from medviz.training.cpu_estimate import suggestions, time_training_steps, training_seconds
from medviz.training.runtime import format_duration, resolve_precision, uses_gpu
from medviz.training.sweep import sweep_name

log = logging.getLogger("medviz")

# Above this much measured CPU training time, warn and suggest settings that fit the run.
_CPU_WARN_SECONDS = 30 * 60


def build_data(cfg: DictConfig) -> ImageArrays:
    """The dataset's images, with its intensity mapping and channel names and colours
    (``dataset.normalise`` ...); a class-stratified subset of them when ``dataset.n_images`` is set.

    The intensity mapping is the whole source's, like its border colour (paper §4).
    """
    data: ImageArrays = build(cfg.dataset.source, "dataset")
    options = cfg.dataset  # run folders written before these settings existed get the defaults
    data = configure_channels(
        data,
        normalise=str(options.get("normalise", "auto")),
        percentiles=tuple(options.get("percentiles", (0.1, 99.9))),
        intensity_range=OmegaConf.to_object(options.intensity_range) if options.get("intensity_range") else None,
        channel_names=options.get("channel_names"),
        channel_colours=options.get("channel_colours"),
    )
    if not data.scale().is_byte_range():
        data.border_colour()  # of the whole source, as the sources that cache it (8-bit) do
    if cfg.dataset.get("n_images") is not None:
        data = stratified_subset(data, int(cfg.dataset.n_images), seed=int(cfg.dataset.get("subset_seed", 0)))
    data = in_memory_if_it_fits(data, ram_budget(cfg.get("speed", {}).get("ram_budget", "auto")))
    counts = ", ".join(f"{name} {n}" for name, n in data.class_counts().items())
    log.info(
        f"dataset {data.name}: {len(data)} images of {data.image_size}x{data.image_size}, {data.channels} channel(s); "
        f"classes: {counts}"
    )
    return data


def build_run_data(cfg: DictConfig) -> tuple[ImageArrays, np.ndarray | None]:
    """The run's images: the dataset, with the planted problems of ``qc.inject`` when set.

    Returns the data and the mask (N,) of planted images, or None. Seeded by ``seed``, so tools
    that read a finished run (figures, explorer, qc) rebuild exactly the images it trained on.
    """
    data = build_data(cfg)
    qc = cfg.get("qc")
    if qc is None or not qc.inject:
        return data, None
    data, injected = inject(data, str(qc.inject), int(qc.count), seed=int(cfg.seed))
    log.info(f"planted {int(injected.sum())} {qc.inject} in {data.name} for quality control")
    return data, injected


def build_method(cfg: DictConfig, stats: ImageStats) -> ContrastiveMethod:
    """The method of ``cfg`` for data with ``stats`` (normalisation and border colour, e.g. ``data.stats()``)."""
    augment = build(cfg.aug.transform, "aug", fill=list(stats.fill))
    backbone = build(cfg.backbone, "backbone", in_channels=stats.channels)
    schedule = build(cfg.schedule, "schedule")
    optimizer = build(cfg.method.optimizer, "method.optimizer")
    lr = cfg.method.base_lr * cfg.batch_size / 256
    make_method = build(cfg.method.module, "method")
    try:
        module = make_method(
            backbone=backbone,
            augment=augment,
            preprocess=Preprocess(list(stats.mean), list(stats.std), stats.intensity),
            schedule=schedule,
            optimizer=optimizer,
            lr=lr,
            grad_clip=cfg.method.grad_clip,
        )
    except MedvizError:  # says already what to do (e.g. a schedule the method cannot train)
        raise
    except (TypeError, ValueError, RuntimeError) as err:
        raise ConfigError(f"could not build `method` from the config ({err}); check the method.* values") from err
    module.grad_clip_algorithm = _clip_algorithm(cfg.method.get("grad_clip_algorithm", "norm"))
    module.channels_last = bool(cfg.speed.channels_last)
    gpu = uses_gpu(str(cfg.trainer.accelerator))
    if gpu if cfg.speed.compile == "auto" else cfg.speed.compile:
        module.backbone.compile()  # in place: parameter names and checkpoints stay the same
    if gpu if cfg.speed.compile_augment == "auto" else cfg.speed.compile_augment:
        # Hundreds of small elementwise kernels per view become a few fused ones (docs/speed.md).
        module.augment.compile(dynamic=False)
    return module


def _clip_algorithm(name: str) -> str:
    if name not in ("norm", "value"):
        raise ConfigError(
            f"method.grad_clip_algorithm={name} is not known; choose norm (clip the gradient's norm) or value "
            "(clip each element, as the reference's pip package)"
        )
    return name


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


def warn_if_slow_on_cpu(cfg: DictConfig, module: ContrastiveMethod, data: ImageArrays) -> None:
    """On a CPU-only machine, measure the run's training time; above half an hour, say so and what fits."""
    if uses_gpu(str(cfg.trainer.accelerator)):
        return
    batch = min(int(cfg.batch_size), len(data))
    timing = time_training_steps(module, (data.channels, data.image_size, data.image_size), batch)
    stages = module.schedule.stages
    output_epochs = sum(s.epochs for s in stages if s.trains == "output")
    images_per_epoch = len(data) // batch * batch
    low, typical, high = training_seconds(timing, images_per_epoch, module.total_epochs - output_epochs, output_epochs)
    spread = (
        f"{format_duration(low)} to {format_duration(high)}: " if format_duration(low) != format_duration(high) else ""
    )
    measured = (
        f"about {format_duration(typical)} of training steps on this CPU ({spread}{len(timing.per_image)} "
        f"timed steps of {timing.batch} images after warm-up)"
    )
    log.info(f"no GPU: this run ({module.total_epochs} epochs x {len(data)} images) needs {measured}")
    if typical <= _CPU_WARN_SECONDS:
        return
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    ideas = suggestions(
        typical,
        _CPU_WARN_SECONDS / 2,
        experiment=choices.get("experiment"),
        backbone=str(cfg.backbone.name),
        n_images=len(data),
        epochs=[s.epochs for s in stages],
    )
    hint = f" To finish in about 15 min, try: {'; or '.join(ideas)}." if ideas else ""
    log.warning(
        f"no GPU: this run ({module.total_epochs} epochs x {len(data)} images, backbone {cfg.backbone.name}) "
        f"needs {measured}, before evaluation.{hint}"
    )
