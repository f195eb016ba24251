"""train(cfg): the only place that reads a whole config; everything else takes built objects."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from medviz.callbacks import MapSnapshot, StageSchedule
from medviz.data import ArrayDataModule, ImageArrays
from medviz.errors import MedvizError
from medviz.evaluation.tsne import feature_tsne
from medviz.methods.base import ContrastiveMethod
from medviz.outputs import (
    map_metrics,
    pixel_tsne_metrics,
    save_embedding,
    save_features,
    save_map_figure,
    write_metrics,
)
from medviz.runtime import format_duration, resolve_precision, seconds_per_image_step, uses_gpu
from medviz.sweep import sweep_name
from medviz.tracking import (
    close_loggers,
    log_config,
    log_embedding_table,
    log_final_metrics,
    log_map_image,
    start_wandb_runs,
)

log = logging.getLogger("medviz")

# Above this much estimated CPU time, warn and point to the quickstart preset.
_CPU_WARN_SECONDS = 30 * 60


def build_data(cfg: DictConfig) -> ImageArrays:
    try:
        data: ImageArrays = instantiate(cfg.dataset.source)
    except InstantiationException as err:
        if isinstance(err.__cause__, MedvizError):  # already says what to do: drop Hydra's wrapper
            raise err.__cause__ from None
        raise
    counts = ", ".join(f"{name} {n}" for name, n in data.class_counts().items())
    log.info(f"dataset {data.name}: {len(data)} images of {data.image_size}x{data.image_size}; classes: {counts}")
    return data


def build_module(cfg: DictConfig, data: ImageArrays) -> ContrastiveMethod:
    mean, std = data.channel_stats()
    augment = instantiate(cfg.aug.transform, mean=mean.tolist(), std=std.tolist(), fill=data.border_colour().tolist())
    backbone = instantiate(cfg.backbone)
    lr = cfg.method.base_lr * cfg.batch_size / 256
    module = instantiate(cfg.method.module)(backbone=backbone, augment=augment, lr=lr)
    module.channels_last = bool(cfg.speed.channels_last)
    gpu = uses_gpu(str(cfg.trainer.accelerator))
    if gpu if cfg.speed.compile == "auto" else cfg.speed.compile:
        module.backbone.compile()  # in place: parameter names and checkpoints stay the same
    if gpu if cfg.speed.compile_augment == "auto" else cfg.speed.compile_augment:
        # Hundreds of small elementwise kernels per view become a few fused ones (README "Speed").
        module.augment.compile(dynamic=False)
    return module


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
    callbacks: list[L.Callback] = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="epoch{epoch:04d}",
            auto_insert_metric_name=False,
            every_n_epochs=cfg.checkpoint_every,
            save_top_k=-1 if cfg.checkpoint_every else 0,
            save_last=True,
        )
    ]
    if hasattr(module, "schedule"):
        callbacks.append(StageSchedule())
    callbacks.extend(extra_callbacks)
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    if trainer_cfg.get("enable_progress_bar", True):
        # The bar reads the logged values (a host-device sync) only when it redraws.
        callbacks.append(TQDMProgressBar(refresh_rate=cfg.speed.progress_refresh_steps))
    precision = resolve_precision(trainer_cfg.pop("precision"), str(cfg.trainer.accelerator))
    if trainer_cfg.get("sync_batchnorm") and not uses_gpu(str(cfg.trainer.accelerator)):
        log.info("SyncBatchNorm needs GPUs: on CPU each DDP process normalises over its own share of the batch")
        trainer_cfg["sync_batchnorm"] = False
    make_trainer = instantiate(OmegaConf.create(trainer_cfg))  # a partial: the run supplies the rest
    return make_trainer(
        max_epochs=module.total_epochs,
        precision=precision,
        callbacks=callbacks,
        logger=loggers,
        default_root_dir=str(run_dir),
    )


def warn_if_slow_on_cpu(cfg: DictConfig, module: ContrastiveMethod, data: ImageArrays) -> None:
    """On a CPU-only machine, estimate the run's duration and point to the quickstart preset."""
    if uses_gpu(str(cfg.trainer.accelerator)):
        return
    per_image = seconds_per_image_step(module, (3, data.image_size, data.image_size))
    steps_images = module.total_epochs * (len(data) // cfg.batch_size) * cfg.batch_size
    estimate = per_image * steps_images
    if estimate > _CPU_WARN_SECONDS:
        log.warning(
            f"no GPU: this run ({module.total_epochs} epochs x {len(data)} images, "
            f"backbone {cfg.backbone.name}) would take about {format_duration(estimate)} "
            "on this CPU. "
            "For a CPU demo that finishes in minutes use `python train.py experiment=quickstart`."
        )


@torch.no_grad()
def predict(module: ContrastiveMethod, datamodule: ArrayDataModule) -> dict[str, np.ndarray]:
    """Embed every image without augmentation, on the module's device; rows in dataset order.

    A plain loop rather than ``trainer.predict``: after a DDP fit, one process embeds the whole
    dataset instead of each process embedding a shard.
    """
    module.eval()
    outputs: list[dict[str, torch.Tensor]] = []
    for images, indices in datamodule.predict_dataloader():
        x = module.augment.plain(images.to(module.device))
        step = module.predict_step((x, indices.to(module.device)), 0)
        outputs.append({key: value.cpu() for key, value in step.items()})
    merged = {key: torch.cat([o[key] for o in outputs]).numpy() for key in outputs[0]}
    order = np.argsort(merged["index"], kind="stable")
    return {key: value[order] for key, value in merged.items()}


def train(cfg: DictConfig) -> dict:
    """Train one run and write its folder; returns the metrics.

    Loggers are closed whatever happens (a failed run is marked failed in W&B), so in a sweep
    the next run starts with fresh loggers.
    """
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
    L.seed_everything(cfg.seed, workers=True)

    loggers = build_loggers(cfg)
    try:
        start_wandb_runs(loggers, run_dir)
        log_config(loggers, resolved)
        metrics = fit_and_measure(cfg, run_dir, loggers)
    except BaseException:
        close_loggers(loggers, failed=True)
        raise
    if metrics:
        report(run_dir, metrics)
    close_loggers(loggers, failed=False)
    return metrics


def fit_and_measure(cfg: DictConfig, run_dir: Path, loggers: list[Logger]) -> dict:
    """Fit, then embed every image, write the run's outputs and log them; {} off rank 0 or when interrupted."""
    data = build_data(cfg)
    datamodule = ArrayDataModule(
        data,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        on_device=cfg.speed.data_on_device,
        seed=cfg.seed,
    )
    module = build_module(cfg, data)
    warn_if_slow_on_cpu(cfg, module, data)
    snapshot = snapshot_callback(cfg, data, run_dir)
    trainer = build_trainer(cfg, module, run_dir, loggers, [snapshot] if snapshot else [])

    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    train_minutes = (time.perf_counter() - start) / 60
    if trainer.interrupted:
        log.warning(f"training was interrupted; checkpoints are in {run_dir / 'checkpoints'}")
        return {}

    if trainer.global_rank != 0:  # under DDP, process 0 writes the outputs
        return {}
    result = predict(module, datamodule)
    if module.produces_map:
        coords = result["embedding"]
    else:  # SimCLR / BYOL: keep the 512-D features, and map them with t-SNE (paper's baselines)
        save_features(run_dir, result["features"], data, result["index"])
        log.info(f"t-SNE of the {result['features'].shape[1]}-D features for the map (openTSNE defaults)")
        coords = feature_tsne(result["features"], seed=cfg.seed)
    save_embedding(run_dir, coords, data, result["index"])
    if data.split is not None:  # official split of each image, for linear evaluation (Table 5)
        np.save(run_dir / "split.npy", data.split.astype(str))
    metrics = {
        "train_minutes": round(train_minutes, 2),
        "n_images": len(data),
        "epochs": module.total_epochs,
    }
    metrics.update(map_metrics(coords, data.labels, k=cfg.eval.knn_k, seed=cfg.seed))
    if "knn_accuracy" not in metrics:
        log.info("fewer than 2 labelled classes: kNN accuracy and silhouette are skipped for this map")
    elif cfg.eval.pixel_tsne:
        metrics.update(pixel_tsne_metrics(data, k=cfg.eval.knn_k, seed=cfg.seed))
    write_metrics(run_dir, metrics)
    label = f"{data.name} · {cfg.method.name} · aug={cfg.aug.name} · seed {cfg.seed}"
    figure = save_map_figure(run_dir, coords, data, label, metrics)

    log_final_metrics(loggers, metrics)
    log_map_image(loggers, "map/final", figure, caption=f"{label}: all {len(data)} images")
    log_embedding_table(
        loggers, coords, data.images, data.labels, data.class_names, max_rows=cfg.eval.table_size, seed=cfg.seed
    )
    return metrics


def report(run_dir: Path, metrics: dict) -> None:
    lines = [f"run folder: {run_dir}"]
    if "knn_accuracy" in metrics:
        lines.append(
            f"map kNN accuracy (k=15): {metrics['knn_accuracy']:.3f}   silhouette: {metrics['silhouette']:.3f}"
        )
    if "pixel_tsne_knn_accuracy" in metrics:
        lines.append(
            f"pixel t-SNE kNN accuracy:  {metrics['pixel_tsne_knn_accuracy']:.3f}   "
            f"silhouette: {metrics['pixel_tsne_silhouette']:.3f}"
        )
    lines.append(f"training took {metrics['train_minutes']:.1f} min; map: {run_dir / 'map.png'}")
    print("\n".join(lines), flush=True)
