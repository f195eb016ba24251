"""Resume anywhere: killed runs continue bit for bit; signals leave resumable checkpoints; corrupt ones are skipped."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from medviz.checkpoints import newest_checkpoint
from medviz.errors import ConfigError
from medviz.pipeline import train
from tests.conftest import REPO, TINY, compose_config

# Two epochs per stage; 512 images make each epoch long enough (~0.2 s) to kill the run inside a stage.
RUN = [
    *TINY,
    "dataset.source.n_images=512",
    "schedule.epochs=[2,2,2]",
    "schedule.warmup_epochs=[0,0,0]",
    "trainer.deterministic=true",
    "checkpoint_every=1",
]


def start(run_dir: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "train.py", *RUN, *extra, f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "train.py", *RUN, *extra, f"hydra.run.dir={run_dir}"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the run ended before {path.name} appeared:\n{process.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.005)


def embedding(run_dir: Path) -> np.ndarray:
    return np.load(run_dir / "embedding.npz")["embedding"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> np.ndarray:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    done = run(run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    return embedding(run_dir)


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_a_run_killed_in_any_stage_resumes_to_the_same_embedding(stage, uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    process = start(run_dir)
    wait_for(run_dir / "checkpoints" / f"epoch{2 * stage:04d}.ckpt", process)  # first epoch of the stage done
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL and not (run_dir / "embedding.npz").exists()
    _, state = newest_checkpoint(run_dir)
    assert int(state["state_dict"]["stage_index"]) == stage  # killed inside the stage under test

    done = run(tmp_path / "resume-command", f"resume={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(embedding(run_dir), uninterrupted, rtol=0, atol=1e-6)
    assert (run_dir / "logs" / "metrics.csv").is_file() and list((run_dir / "logs").glob("metrics-until-*.csv"))


@pytest.mark.parametrize(("sig", "code", "said"), [(signal.SIGTERM, 128 + 15, "SIGTERM"), (signal.SIGINT, 1, "Ctrl-C")])
def test_sigterm_and_ctrl_c_save_a_resumable_checkpoint(sig, code, said, tmp_path):
    run_dir = tmp_path / "run"
    process = start(run_dir)
    wait_for(run_dir / "checkpoints" / "epoch0000.ckpt", process)
    process.send_signal(sig)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == code, output[-3000:]
    assert f"stopped by {said}" in output and f"resume={run_dir}" in output
    interrupted = run_dir / "checkpoints" / "interrupted.ckpt"
    assert "state_dict" in torch.load(interrupted, map_location="cpu", weights_only=True)

    done = run(tmp_path / "resume-command", f"resume={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert embedding(run_dir).shape == (512, 2)


@pytest.fixture
def finished(tmp_path) -> Path:
    run_dir = tmp_path / "finished"
    train(compose_config([*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]"], run_dir=run_dir))
    return run_dir


def test_a_corrupt_last_checkpoint_falls_back_to_the_previous_good_one(finished, caplog):
    last = finished / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated, as by a crash without atomic writes
    with caplog.at_level(logging.WARNING, logger="medviz"):
        chosen, _ = newest_checkpoint(finished)
    assert chosen.name == "epoch0002.ckpt"
    assert "last.ckpt is unreadable" in caplog.text


def test_no_readable_checkpoint_is_a_clear_error(finished):
    for path in (finished / "checkpoints").glob("*.ckpt"):
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="none of the 4 checkpoints .* can be read"):
        newest_checkpoint(finished)


def test_resume_true_continues_the_newest_earlier_run_of_the_same_name(tmp_path):
    overrides = [*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]"]
    older, newer = (
        tmp_path / "2026-01-01_10-00-00_synthblood-tsimcne-default-seed0",
        tmp_path / "2026-01-02_10-00-00_synthblood-tsimcne-default-seed0",
    )
    train(compose_config(overrides, run_dir=older))
    train(compose_config(overrides, run_dir=newer))
    (newer / "embedding.npz").unlink()
    now = tmp_path / "2026-01-03_10-00-00_synthblood-tsimcne-default-seed0"
    train(compose_config([*overrides, "resume=true"], run_dir=now))
    assert (newer / "embedding.npz").is_file() and (newer / "config-resumed.yaml").is_file()
    assert not (now / "embedding.npz").exists()


@pytest.mark.parametrize("method", ["byol", "simclr"])
def test_single_stage_methods_resume_exactly_too(method, tmp_path):
    """BYOL's EMA target and momentum schedule, and SimCLR's optimiser, continue where they stopped."""
    overrides = [*TINY, f"method={method}", "method.module.epochs=4", "method.module.warmup_epochs=1"]
    overrides += ["trainer.deterministic=true"]
    train(compose_config(overrides, run_dir=tmp_path / "full"))
    resumed = tmp_path / "resumed"
    train(compose_config(overrides, run_dir=resumed))
    for name in ("last.ckpt", "epoch0003.ckpt", "epoch0002.ckpt"):
        (resumed / "checkpoints" / name).unlink()  # as if killed after epoch 1
    train(compose_config([*overrides, f"resume={resumed}"], run_dir=tmp_path / "command"))
    full = np.load(tmp_path / "full" / "features.npz")["features"]
    np.testing.assert_allclose(np.load(resumed / "features.npz")["features"], full, rtol=0, atol=1e-6)


CTRL_C_TWICE = """
import os, signal, time
from medviz.checkpoints import ctrl_c_deferred
with ctrl_c_deferred():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)
    print("first Ctrl-C waited", flush=True)
    {second}
    time.sleep(0.2)
    print("block finished", flush=True)
"""


@pytest.mark.parametrize("twice", [False, True])
def test_ctrl_c_waits_for_a_checkpoint_write_and_a_second_one_exits_at_once(twice):
    second = "os.kill(os.getpid(), signal.SIGINT)" if twice else "pass"
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_TWICE.format(second=second)], cwd=REPO, capture_output=True, text=True
    )
    assert "first Ctrl-C waited" in done.stdout
    if twice:
        assert done.returncode == 128 + signal.SIGINT and "block finished" not in done.stdout
    else:  # the interrupt takes effect when the block ends
        assert "block finished" in done.stdout and "KeyboardInterrupt" in done.stderr
