"""The composed Hydra config, as train.py sees it, and the tiny settings that keep test runs to seconds."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from medviz.training.run_folder import register_resolvers

register_resolvers()  # as train.py does: conf/ names them (run folders, data names)

REPO = Path(__file__).resolve().parents[2]
CONF_DIR = REPO / "conf"

# Small enough for seconds on 2 CPU cores, large enough for every class and a few batches.
TINY = [
    "backbone=tinycnn",
    "backbone.width=8",
    "dataset.source.n_images=96",
    "batch_size=32",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "checkpoint_every=1",
]


def compose_config(overrides: list[str], run_dir: Path | None = None) -> DictConfig:
    """The composed training config, as train.py would see it (run_dir replaces Hydra's)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    if run_dir is not None:
        with open_dict(cfg):
            cfg.run_dir = str(run_dir)
    return cfg
