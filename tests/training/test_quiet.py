"""The training log holds what a user can act on: known library noise is filtered, once each."""

from __future__ import annotations

import subprocess
import sys

import pytest

from medviz.training.quiet import NOISE
from tests.helpers.config import REPO, TINY

pytestmark = pytest.mark.trains


def test_a_run_logs_no_known_noise_and_no_line_twice(tmp_path):
    overrides = [
        *TINY,
        "schedule.epochs=[1,1,1]",
        "schedule.warmup_epochs=[0,0,0]",
        "eval.pixel_tsne=true",  # openTSNE speaks too
        "dataset.n_images=5000",  # more than the 96 images: a setting with nothing to do says nothing
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(
        [sys.executable, "train.py", *overrides], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert "map kNN accuracy" in log and "entering stage2-2d-head" in log  # medviz's own lines stay
    assert [noise for noise in NOISE if noise in log] == []
    assert "Precomputed initialization provided" not in log and "negative gradient method" not in log
    assert "dataset.n_images=5000" not in log
    seeds = [line for line in log.splitlines() if "Seed set to 0" in line]
    assert len(seeds) == 1  # Lightning's lines are printed once, not by its handler and Hydra's both
