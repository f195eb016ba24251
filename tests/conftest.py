"""Shared fixtures: compose the real Hydra config, tiny and offline."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from medviz import cli

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: one thread each (and in the runs they start), since
    # more threads than cores make PyTorch's CPU kernels many times slower, not faster.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
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


def medviz(*args: str) -> subprocess.CompletedProcess:
    """``medviz <args>`` through ``medviz.cli.main`` in this process: the command's code, without the
    seconds of starting Python and importing PyTorch again; its exit code and output."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            cli.main(list(args))
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
    return subprocess.CompletedProcess(["medviz", *args], code, stdout.getvalue(), stderr.getvalue())


def plain_trainer(max_epochs: int, callbacks: list, **extra) -> L.Trainer:
    """A bare Lightning Trainer on the CPU: no logger, checkpoints, progress bar or summary."""
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **extra,
    )


@pytest.fixture
def tiny_cfg(tmp_path: Path):
    def make(*extra: str) -> DictConfig:
        return compose_config([*TINY, *extra], run_dir=tmp_path / "run")

    return make


# Signals whose handlers decide how a run stops: Ctrl-C, a scheduler's SIGTERM, SLURM's requeue.
WATCHED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


@pytest.fixture(autouse=True)
def no_signal_handler_outlives_its_test():
    """Every test leaves the process's signal handlers as it found them.

    A handler left behind (by medviz, Lightning or a test) would decide how a later, unrelated
    test reacts to a signal; such a test fails here, naming the signal, and the handler is reset.
    """
    before = {sig: signal.getsignal(sig) for sig in WATCHED_SIGNALS}
    yield
    changed = [sig.name for sig in WATCHED_SIGNALS if signal.getsignal(sig) is not before[sig]]
    for sig in WATCHED_SIGNALS:
        signal.signal(sig, before[sig])
    assert not changed, f"the test left its own handler for {', '.join(changed)} installed"


# The files that start training runs in processes of their own take longest. With one test worker
# per core (`make test`), starting them first keeps one long test from running alone at the end
# while the other worker idles.
LONGEST_FIRST = (
    "test_resume.py",
    "test_sweep.py",
    "test_interrupts.py",
    "test_run_folders.py",
    "test_ddp.py",
    "test_bad_inputs.py",
    "test_paper_miniature.py",
    "test_presets.py",
    "test_map_tools.py",
    "test_train_e2e.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # a stable sort: each file's order stays
