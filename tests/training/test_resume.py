"""Resume anywhere: killed runs continue bit for bit; signals leave resumable checkpoints; corrupt ones are skipped."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import numpy as np
import pytest

from medviz.errors import ConfigError
from medviz.runs.checkpoints import newest_checkpoint
from medviz.training.pipeline import train
from tests.helpers.config import TINY, compose_config
from tests.helpers.resume_runs import embedding, run, start, wait_for

# Starts training runs (often in processes of their own): scheduled first, see tests/conftest.py.
pytestmark = pytest.mark.trains


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> np.ndarray:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    run(run_dir)
    return embedding(run_dir)


def test_a_run_killed_in_every_stage_in_turn_resumes_to_the_same_embedding(uninterrupted, tmp_path):
    """Killed (SIGKILL: no chance to save) in stage 1, resumed; the resumed run killed in stage 2,
    resumed; killed again in stage 3, resumed to the end: the map is the uninterrupted one."""
    run_dir = tmp_path / "run"
    process = start(run_dir)
    for stage in (0, 1, 2):
        wait_for(run_dir / "checkpoints" / f"epoch{2 * stage:04d}.ckpt", process)  # first epoch of the stage done
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL and not (run_dir / "embedding.npz").exists()
        _, state = newest_checkpoint(run_dir)
        assert int(state["state_dict"]["stage_index"]) == stage  # killed inside the stage under test
        if stage < 2:
            process = start(tmp_path / f"resume-command-{stage}", f"resume={run_dir}")

    run(tmp_path / "resume-command", f"resume={run_dir}")
    np.testing.assert_allclose(embedding(run_dir), uninterrupted, rtol=0, atol=1e-6)
    assert (run_dir / "logs" / "metrics.csv").is_file() and list((run_dir / "logs").glob("metrics-until-*.csv"))


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
    overrides = [*TINY, f"method={method}", "schedule.epochs=4", "schedule.warmup_epochs=1"]
    overrides += ["trainer.deterministic=true"]
    train(compose_config(overrides, run_dir=tmp_path / "full"))
    resumed = tmp_path / "resumed"
    train(compose_config(overrides, run_dir=resumed))
    for name in ("last.ckpt", "epoch0003.ckpt", "epoch0002.ckpt"):
        (resumed / "checkpoints" / name).unlink()  # as if killed after epoch 1
    train(compose_config([*overrides, f"resume={resumed}"], run_dir=tmp_path / "command"))
    full = np.load(tmp_path / "full" / "features.npz")["features"]
    np.testing.assert_allclose(np.load(resumed / "features.npz")["features"], full, rtol=0, atol=1e-6)
