"""train(cfg): the only place that reads a whole config; everything else takes built objects."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf, open_dict

from medviz.data.datamodule import ArrayDataModule
from medviz.errors import ConfigError
from medviz.evaluation.batch_mixing import MAX_POINTS
from medviz.evaluation.map_metrics import batch_metrics, map_metrics, pixel_tsne_metrics
from medviz.evaluation.tsne import feature_tsne
from medviz.maps.plots import save_map_figure
from medviz.maps.qc import find_groups, recall
from medviz.maps.qc_report import write_report
from medviz.runs.files import (
    record_metadata,
    save_embedding,
    save_features,
    save_outputs,
    save_points_table,
    write_metrics,
)
from medviz.runs.rebuild import build_method, build_run_data
from medviz.runtime import loader_workers, peak_memory
from medviz.training.build import build_loggers, build_trainer, snapshot_callback, warn_if_slow_on_cpu
from medviz.training.callbacks import TrainingClock
from medviz.training.config_checks import check_config
from medviz.training.cpu_estimate import timing_record
from medviz.training.invariance import cross_batch_partners
from medviz.training.predict import predict
from medviz.training.quiet import quiet_libraries
from medviz.training.resume import check_same_data, prepare_resume, resume_folder
from medviz.training.run_folder import first_process, holds_a_run
from medviz.training.sweep import in_multirun
from medviz.training.tracking import (
    close_loggers,
    log_config,
    log_embedding_table,
    log_final_metrics,
    log_map_image,
    start_wandb_runs,
)

log = logging.getLogger("medviz")


def train(cfg: DictConfig) -> dict:
    """Train one run and write its folder; returns the metrics.

    Loggers are closed whatever happens (a failed run is marked failed in W&B), so in a sweep
    the next run starts with fresh loggers.
    """
    quiet_libraries()
    check_config(cfg)
    with open_dict(cfg):
        cfg.run_dir = str(own_run_folder(cfg.get("run_dir"), resuming=bool(cfg.get("resume"))))
    resumed = resume_folder(cfg.get("resume"), Path(cfg.run_dir), str(cfg.run_name), in_multirun())
    checkpoint = None
    if resumed is not None:  # continue in the earlier folder: every path below follows run_dir
        check_same_data(resumed, OmegaConf.to_container(cfg.dataset, resolve=True))
        checkpoint = prepare_resume(resumed, method=str(cfg.method.name), backbone=str(cfg.backbone.name))
        with open_dict(cfg):
            cfg.run_dir = str(resumed)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if first_process():  # one writer: under DDP every process, on every node, shares the folder
        (run_dir / ("config-resumed.yaml" if resumed else "config.yaml")).write_text(OmegaConf.to_yaml(resolved))
    if first_process() and resumed and not (run_dir / "config.yaml").is_file():  # the folder's identity
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
        log.warning(f"{run_dir / 'config.yaml'} was missing: restored from this command's settings")
    L.seed_everything(cfg.seed, workers=True)

    loggers = build_loggers(cfg)
    try:
        start_wandb_runs(loggers, run_dir)
        log_config(loggers, resolved)
        metrics = fit_and_measure(cfg, run_dir, loggers, checkpoint)
    except BaseException:
        close_loggers(loggers, failed=True)
        raise
    if metrics:
        report(run_dir, metrics)
    close_loggers(loggers, failed=False)
    return metrics


def own_run_folder(run_dir: str | None, resuming: bool) -> Path:
    """This run's folder: ``run_dir`` when set, else Hydra's (made unique by :mod:`medviz.training.run_folder`).

    A folder that already holds a run is never written over: continuing it takes ``resume``.
    """
    if run_dir and in_multirun():
        raise ConfigError(
            f"run_dir={run_dir} names the folder of one run, but a sweep writes one folder per job: "
            "set hydra.sweep.dir=<folder> instead"
        )
    folder = Path(run_dir) if run_dir else Path(HydraConfig.get().runtime.output_dir)
    # DDP's other processes (on this node or others) may start after process 0 wrote its config:
    # they join the same run.
    if holds_a_run(folder) and not resuming and first_process():
        raise ConfigError(
            f"{folder} already holds a run (its config, checkpoints or results); nothing was changed. "
            f"Continue it with resume={folder}, or choose a new folder (leave run_dir unset for a fresh one)"
        )
    return folder


def fit_and_measure(cfg: DictConfig, run_dir: Path, loggers: list[Logger], checkpoint: Path | None = None) -> dict:
    """Fit (from ``checkpoint`` when resuming), then embed every image, write the run's outputs and log them.

    Returns {} off rank 0 under DDP.
    """
    data, injected = build_run_data(cfg)
    if first_process():
        record_metadata(run_dir, data, resuming=checkpoint is not None)
    if injected is not None:
        np.save(run_dir / "qc_injected.npy", injected)
    datamodule = ArrayDataModule(
        data,
        batch_size=cfg.batch_size,
        num_workers=loader_workers(cfg.num_workers, data),
        on_device=cfg.speed.data_on_device,
        seed=cfg.seed,
        homogeneous=bool(cfg.get("invariance", {}).get("homogeneous_batches", False)),
        partners=cross_batch_partners(cfg, data),
    )
    module = build_method(cfg, data.stats())
    module.set_image_batch_rows(data.intensity_rows())  # dataset.normalise=batch: each image's own range
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    timing = warn_if_slow_on_cpu(cfg, module, data, experiment=choices.get("experiment"))
    batch = min(int(cfg.batch_size), len(data))
    images_per_epoch = len(data) // batch * batch
    if timing is not None and first_process():  # kept, so estimates can be checked against the run's epoch times
        record = timing_record(timing, images_per_epoch, [s.epochs for s in module.schedule.stages])
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        (run_dir / "logs" / "cpu_estimate.json").write_text(json.dumps(record, indent=1))
    clock = TrainingClock(timing, images_per_epoch=images_per_epoch)
    snapshot = snapshot_callback(cfg, data, run_dir)
    trainer = build_trainer(cfg, module, run_dir, loggers, [clock, snapshot] if snapshot else [clock])

    start = time.perf_counter()
    # weights_only: loading a checkpoint never runs pickled code.
    trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
    train_minutes = (time.perf_counter() - start) / 60
    if trainer.global_rank != 0:  # under DDP, process 0 writes the outputs
        return {}
    result = predict(module, datamodule)
    if module.has_map:
        coords = result["embedding"]
        save_outputs(run_dir, result, data)
    else:  # SimCLR / BYOL: keep the 512-D features, and map them with t-SNE (paper's baselines)
        save_features(run_dir, result["features"], data, result["index"])
        log.info(f"t-SNE of the {result['features'].shape[1]}-D features for the map (openTSNE defaults)")
        coords = feature_tsne(result["features"], seed=cfg.seed)
    save_embedding(run_dir, coords, data, result["index"])
    save_points_table(run_dir, coords, data)
    if data.split is not None:  # official split of each image, for linear evaluation (Table 5)
        np.save(run_dir / "split.npy", data.split.astype(str))
    metrics = {
        "train_minutes": round(train_minutes, 2),
        "n_images": len(data),
        "image_size": data.image_size,
        "epochs": module.total_epochs,
        "channels": data.channels,
        "dtype": str(data.images.dtype),
        "intensity": data.scale().describe(),
    }
    metrics.update(map_metrics(coords, data.labels, k=cfg.eval.knn_k, seed=cfg.seed, class_names=data.class_names))
    if "knn_accuracy" not in metrics:
        log.info("fewer than 2 labelled classes: kNN accuracy and silhouette are skipped for this map")
    elif cfg.eval.pixel_tsne:
        metrics.update(
            pixel_tsne_metrics(data, k=cfg.eval.knn_k, seed=cfg.seed, max_images=cfg.eval.get("tsne_max_images"))
        )
    if injected is not None:  # where did the planted problems land? (paper Fig. 6)
        shown = data.display_images()
        groups = find_groups(coords, shown, data.labels)
        metrics["qc_recall"] = recall(groups, injected)
        write_report(run_dir / "qc", coords, data.labels, list(data.class_names), shown, groups, injected)
        log.info(f"quality control: {metrics['qc_recall']:.0%} of the planted images flagged; see {run_dir / 'qc'}")
    metrics.update(
        batch_metrics(
            coords,
            result.get("high", result["features"]),
            data,
            k=cfg.eval.knn_k,
            seed=cfg.seed,
            max_points=int(cfg.eval.get("batch_metrics_points", MAX_POINTS)),
        )
    )
    metrics.update(peak_memory())
    write_metrics(run_dir, metrics)
    label = f"{data.name} · {cfg.method.name} · aug={cfg.aug.name} · seed {cfg.seed}"
    figure = save_map_figure(run_dir, coords, data, label, metrics)

    log_final_metrics(loggers, metrics)
    log_map_image(loggers, "map/final", figure, caption=f"{label}: all {len(data)} images")
    log_embedding_table(
        loggers,
        coords,
        data.display_images,
        data.labels,
        data.class_names,
        max_rows=cfg.eval.table_size,
        seed=cfg.seed,
        metadata=data.metadata,
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
