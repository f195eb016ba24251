"""Rebuilding what a run trained from its config: its images (as it saw them) and its method.

Training builds a new run with these functions, and the map tools and evaluation rebuild a finished
one with the same ones, so both see exactly the same images and network.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from medviz.data.image_arrays import ImageArrays, ImageStats
from medviz.data.prepare.batch_intensity import per_batch_intensity
from medviz.data.prepare.channels import configure_channels
from medviz.data.prepare.memory import in_memory_if_it_fits, ram_budget
from medviz.data.prepare.metadata import MetadataOptions, attach_metadata, describe_batches
from medviz.data.prepare.qc_inject import inject
from medviz.data.prepare.subset import select_rows, stratified_subset
from medviz.errors import ConfigError, MedvizError
from medviz.instantiate import build
from medviz.methods.base import ContrastiveMethod
from medviz.models.preprocess import Preprocess
from medviz.runs.config import load_run_config, saved_config
from medviz.runs.files import load_metadata
from medviz.runtime import uses_gpu

log = logging.getLogger("medviz")


def build_data(cfg: DictConfig, kept_metadata: pd.DataFrame | None = None) -> ImageArrays:
    """The dataset's images, with its intensity mapping and channel names and colours
    (``dataset.normalise`` ...); a class-stratified subset of them when ``dataset.n_images`` is set.

    The intensity mapping is the whole source's, like its border colour (paper §4).
    ``kept_metadata``: a finished run's own table, joined instead of the dataset's current one
    (images added since are left out, so the subset is drawn from the images the run saw).
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
    data = attach_metadata(data, metadata_options(options, kept_metadata), root=options.get("path"))
    said = describe_batches(data)
    if said:
        log.info(said)
    if options.get("normalise") == "batch":  # once each image's batch is known, over the whole source
        data = per_batch_intensity(data, tuple(options.get("percentiles", (0.1, 99.9))))
    if cfg.dataset.get("n_images") is not None:
        data = stratified_subset(data, int(cfg.dataset.n_images), seed=int(cfg.dataset.get("subset_seed", 0)))
    data = in_memory_if_it_fits(data, ram_budget(cfg.get("speed", {}).get("ram_budget", "auto")))
    counts = ", ".join(f"{name} {n}" for name, n in data.class_counts().items())
    log.info(
        f"dataset {data.name}: {len(data)} images of {data.image_size}x{data.image_size}, {data.channels} channel(s); "
        f"classes: {counts}"
    )
    return data


def metadata_options(dataset: DictConfig, kept: pd.DataFrame | None = None) -> MetadataOptions:
    """The metadata settings of a ``dataset`` config (run folders written before they existed: none);
    ``kept``: a finished run's table, used instead of the files the config names."""
    return MetadataOptions(
        kept=kept,
        table=dataset.get("metadata"),
        key=dataset.get("metadata_key"),
        platemap=dataset.get("platemap"),
        label=dataset.get("label"),
        batch=dataset.get("batch"),
        drop_missing=bool(dataset.get("drop_missing", False)),
    )


def build_run_data(cfg: DictConfig, kept_metadata: pd.DataFrame | None = None) -> tuple[ImageArrays, np.ndarray | None]:
    """The run's images: the dataset, with the planted problems of ``qc.inject`` when set.

    Returns the data and the mask (N,) of planted images, or None. Seeded by ``seed``, so tools
    that read a finished run (figures, explorer, qc) rebuild exactly the images it trained on.
    """
    data = build_data(cfg, kept_metadata)
    qc = cfg.get("qc")
    if qc is None or not qc.inject:
        return data, None
    data, injected = inject(data, str(qc.inject), int(qc.count), seed=int(cfg.seed))
    log.info(f"planted {int(injected.sum())} {qc.inject} in {data.name} for quality control")
    return data, injected


def build_method(cfg: DictConfig, stats: ImageStats) -> ContrastiveMethod:
    """The method of ``cfg`` for data with ``stats`` (normalisation and border colour, e.g. ``data.stats()``)."""
    augment = build(cfg.aug.transform, "aug", fill=list(stats.fill), **_technical_kind(cfg.aug.transform, stats))
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


def _technical_kind(transform: DictConfig, stats: ImageStats) -> dict:
    """``technical.kind=auto`` made concrete for the data: stain jitter for 8-bit RGB (stored 0-255),
    fluorescence jitter otherwise; as an override of the augmentation's ``technical`` node."""
    technical = transform.get("technical")
    if technical is None or technical.get("kind") != "auto":
        return {}
    eight_bit = stats.intensity is None or stats.intensity.is_byte_range()
    kind = "stain" if stats.channels == 3 and eight_bit else "fluorescence"
    values = dict(OmegaConf.to_container(technical, resolve=True))  # type: ignore[arg-type]
    return {"technical": {**values, "kind": kind}}


def _clip_algorithm(name: str) -> str:
    if name not in ("norm", "value"):
        raise ConfigError(
            f"method.grad_clip_algorithm={name} is not known; choose norm (clip the gradient's norm) or value "
            "(clip each element, as the reference's pip package)"
        )
    return name


def open_finished_run(run_dir: Path) -> tuple[dict[str, np.ndarray], ImageArrays, np.ndarray | None]:
    """A finished run's ``embedding.npz`` (as a dict of arrays), its images as trained (planted
    problems included) and the planted mask (N,) or None; refused clearly when it is not finished."""
    has_config = saved_config(run_dir) is not None
    if not (run_dir / "embedding.npz").is_file() or not has_config:
        missing = "embedding.npz" if has_config else "config.yaml"
        raise ConfigError(
            f"{run_dir} is not a finished training run folder (no {missing}); an interrupted run finishes "
            "with its training command plus resume=<run folder>, which also restores a lost config.yaml"
        )
    cfg = load_run_config(run_dir)  # refuses what medviz would not build from a shared folder
    with np.load(run_dir / "embedding.npz") as saved:
        arrays = {key: saved[key] for key in saved.files}
    kept = load_metadata(run_dir, len(arrays["embedding"]))  # the table the run trained on, never today's
    data, injected = build_run_data(cfg, kept)
    if "files" in arrays and data.files is not None:
        rows = _rows_of(arrays["files"], [str(f) for f in data.files], run_dir)
        if rows is not None:
            log.info(f"{run_dir}: the dataset's order changed since the run; images matched to points by file")
            data = select_rows(data, rows)
            injected = None if injected is None else injected[rows]
    if len(data) != len(arrays["embedding"]):
        raise ConfigError(f"the dataset now has {len(data)} images but the map has {len(arrays['embedding'])}")
    if kept is not None:  # row for row with the points, planted duplicates included
        data = replace(data, metadata=kept)
    return arrays, data, injected


def _rows_of(recorded: np.ndarray, current: list[str], run_dir: Path) -> np.ndarray | None:
    """Where each of the map's images (``recorded``, (N,) in point order) is in the rebuilt dataset
    (``current``); None when they are in the same order. Refused, saying what changed, when some
    are gone (renamed or removed since the run)."""
    recorded_list = [str(f) for f in recorded]
    if recorded_list == current:
        return None
    where: dict[str, list[int]] = {}
    for row, name in enumerate(current):
        where.setdefault(name, []).append(row)  # a planted duplicate names its source's file again
    rows, missing = [], []
    for name in recorded_list:
        found = where.get(name)
        if found:
            rows.append(found.pop(0))
        else:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"{len(missing)} of the {len(recorded_list)} images of the map in {run_dir} are no longer in the "
            f"dataset (renamed or removed since the run; e.g. {missing[0]}): the map tools show only the images "
            "the run trained on -- restore them, or train again on the data as it is"
        )
    return np.asarray(rows, dtype=np.int64)
