"""Experiment loggers: what every logger gets (config, map images, final metrics) and W&B's extras.

Lightning's loggers carry the per-step scalars. This module adds what they do not do alone:
the map as an image (a PNG in the run folder for every logger, an image panel in W&B), a
``wandb.Table`` of the final embedding with a thumbnail per point, and closing each W&B run --
in a Hydra multirun all jobs share one process, and a run that is not finished would swallow the
next job's metrics.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from lightning.pytorch.loggers import Logger, WandbLogger

from medviz.errors import ConfigError

log = logging.getLogger("medviz")


#: Where the user asked W&B to stage artifacts, if anywhere (read once: runs below change the variable).
_USER_DATA_DIR = os.environ.get("WANDB_DATA_DIR")


def start_wandb_runs(loggers: Sequence[Logger], run_dir: Path) -> None:
    """Start each W&B run now, so a missing login fails before training with a message that says what to do.

    W&B stages table images (the map's thumbnails) in ``~/.local/share/wandb`` unless told
    otherwise; unless the user set ``WANDB_DATA_DIR``, they go to ``<run_dir>/wandb`` so a run
    writes only into its own folder and an offline run can be synced from there.
    """
    targets = wandb_loggers(loggers)
    if not targets:
        return
    import wandb

    os.environ["WANDB_DATA_DIR"] = _USER_DATA_DIR or str(run_dir / "wandb")

    for logger in targets:
        try:
            logger.experiment  # noqa: B018 -- creating the run is the point
        except wandb.errors.UsageError as err:
            raise ConfigError(
                f"logger=wandb could not start a W&B run ({err}). Run `wandb login` once (or set "
                "WANDB_API_KEY), or log locally with WANDB_MODE=offline and upload later with `wandb sync`."
            ) from None


def wandb_loggers(loggers: Sequence[Logger]) -> list[WandbLogger]:
    return [logger for logger in loggers if isinstance(logger, WandbLogger)]


def log_config(loggers: Sequence[Logger], config: dict) -> None:
    """The resolved config as the run's hyperparameters (W&B run config, CSV hparams.yaml)."""
    for logger in loggers:
        logger.log_hyperparams(config)


def log_map_image(loggers: Sequence[Logger], key: str, path: Path, caption: str, step: int | None = None) -> None:
    """A map PNG already saved in the run folder, as an image panel in every W&B run."""
    for logger in wandb_loggers(loggers):
        logger.log_image(key=key, images=[str(path)], caption=[caption], step=step)


def log_final_metrics(loggers: Sequence[Logger], metrics: dict[str, float]) -> None:
    """Final metrics as ``final/<name>`` (W&B: also in the run summary, for the runs table)."""
    scalars = {f"final/{key}": float(value) for key, value in metrics.items() if isinstance(value, int | float)}
    for logger in loggers:
        logger.log_metrics(scalars)
    for logger in wandb_loggers(loggers):
        logger.experiment.summary.update(scalars)


def log_embedding_table(
    loggers: Sequence[Logger],
    coords: np.ndarray,
    thumbnails: Callable[[np.ndarray], np.ndarray],
    labels: np.ndarray,
    class_names: Sequence[str],
    max_rows: int,
    seed: int,
    metadata: pd.DataFrame | None = None,
) -> None:
    """The map as a ``wandb.Table`` (index, x, y, label, class, thumbnail, then every metadata column)
    to explore, colour and filter in the W&B UI.

    Args:
        coords: (N, 2) map coordinates in dataset order.
        thumbnails: rows (n,) -> uint8 RGB (n, H, W, 3) (``ImageArrays.display_images``): only the
            sampled rows are read and composited.
        labels: (N,) class indices, -1 where unlabelled.
        max_rows: at most this many points, a seeded random sample (each row uploads one image).
        metadata: the run's metadata (N rows): numbers stay numbers, everything else is text.
    """
    targets = wandb_loggers(loggers)
    if not targets:
        return
    import wandb

    rows = np.arange(len(coords))
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    base = ["index", "x", "y", "label", "class", "image"]
    extra = [] if metadata is None else [c for c in metadata.columns if c not in base]
    table = wandb.Table(columns=[*base, *extra])
    images = dict(zip(rows.tolist(), thumbnails(rows), strict=True))
    values = {column: [_cell(v) for v in metadata[column].iloc[rows]] for column in extra}
    for n, i in enumerate(rows.tolist()):
        label = int(labels[i])
        name = class_names[label] if label >= 0 else "unlabelled"
        cells = [values[column][n] for column in extra]
        table.add_data(int(i), float(coords[i, 0]), float(coords[i, 1]), label, name, wandb.Image(images[i]), *cells)
    for logger in targets:
        logger.experiment.log({"map/embedding": table})


def _cell(value: object) -> object:
    """A metadata value for a W&B table: numbers as numbers, missing as None, anything else as text."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return value.item() if isinstance(value, np.generic) else value
    return str(value)


def close_loggers(loggers: Sequence[Logger], failed: bool) -> None:
    """Flush every logger and finish W&B runs (exit code 1 when the run failed); print how to sync offline runs."""
    for logger in loggers:
        try:
            logger.finalize("failed" if failed else "success")
        except Exception as err:  # a logger that cannot flush must not hide the run's own error
            log.warning(f"could not finalise the {type(logger).__name__}: {err}")
    for logger in wandb_loggers(loggers):
        run = logger._experiment  # None when W&B never started a run (e.g. a crash before training)
        if run is None or not hasattr(run, "finish"):
            continue
        offline = run.settings.mode == "offline"
        run_folder = Path(run.dir).parent
        run.finish(exit_code=1 if failed else 0)
        if offline:
            print(f"W&B run saved offline; upload it with:  wandb sync {run_folder}", flush=True)
