"""Training runs in their own process, for the tests that kill, interrupt and resume them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from medviz.training.pipeline import train
from tests.helpers.config import REPO, TINY, compose_config

# Two epochs per stage; 512 images make each epoch long enough (~0.2 s) to kill the run inside a stage.
RUN = [
    *TINY,
    "dataset.source.n_images=512",
    "schedule.epochs=[2,2,2]",
    "schedule.warmup_epochs=[0,0,0]",
    "trainer.deterministic=true",
    "checkpoint_every=1",
]


def as_from_a_terminal() -> None:
    """In the child: Ctrl-C handled as in a terminal, even when the suite runs in the background
    (a background job starts with SIGINT ignored, and its children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(run_dir: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "train.py", *RUN, *extra, f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=as_from_a_terminal
    )


def run(run_dir: Path, *extra: str) -> dict:
    """The same run in this process, to its end (where nothing is killed, a process of its own adds
    only the seconds of importing PyTorch); its metrics."""
    return train(compose_config([*RUN, *extra], run_dir=run_dir))


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the run ended before {path.name} appeared:\n{process.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.005)


def embedding(run_dir: Path) -> np.ndarray:
    return np.load(run_dir / "embedding.npz")["embedding"]
