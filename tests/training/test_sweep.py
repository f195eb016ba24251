"""Hydra multiruns: one folder per job, a summary of the sweep, failed jobs that do not stop the others."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from medviz.training.pipeline import train
from tests.helpers.config import REPO, TINY, compose_config
from tests.helpers.wandb_records import exit_code, offline_run_dirs, read_records, run_record

# Starts training runs (often in processes of their own): scheduled first, see tests/conftest.py.
pytestmark = pytest.mark.trains

TINY_STAGES = [*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]"]


def run_sweep(sweep_dir, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "train.py", "-m", *TINY_STAGES, *overrides, f"hydra.sweep.dir={sweep_dir}"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def read_summary(sweep_dir) -> list[dict]:
    with open(sweep_dir / "summary.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_two_by_two_sweep_writes_every_run_and_a_summary(tmp_path):
    done = run_sweep(tmp_path, "aug=default,rot90", "seed=0,1")
    assert done.returncode == 0, done.stderr[-3000:]
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert names == [
        "0_synthblood-tsimcne-default-seed0",
        "1_synthblood-tsimcne-default-seed1",
        "2_synthblood-tsimcne-rot90-seed0",
        "3_synthblood-tsimcne-rot90-seed1",
    ]
    rows = read_summary(tmp_path)
    assert [row["status"] for row in rows] == ["completed"] * 4
    for row in rows:
        metrics = json.loads((tmp_path / row["folder"] / "metrics.json").read_text())
        assert float(row["knn_accuracy"]) == metrics["knn_accuracy"]
        assert float(row["silhouette"]) == metrics["silhouette"]
    summary = (tmp_path / "summary.md").read_text()
    # Seeds of one setting are averaged: one row per augmentation set, 2 of 2 runs completed.
    assert "| aug=default | 2/2 |" in summary and "| aug=rot90 | 2/2 |" in summary
    assert "sweep summary:" in done.stdout and "4 runs, 4 completed, 0 failed" in done.stdout


def test_a_failing_job_does_not_stop_the_sweep_and_its_wandb_run_is_closed(tmp_path):
    done = run_sweep(tmp_path, "dataset.source.n_images=0,96", "logger=[csv,wandb]")
    assert done.returncode != 0  # the sweep reports that a job failed ...
    rows = read_summary(tmp_path)
    assert [row["status"] for row in rows] == ["failed", "completed"]  # ... after running the job after it
    assert "n_images >= 1" in rows[0]["error"]
    assert "failed: synthblood needs dataset.source.n_images >= 1" in done.stdout + done.stderr
    failed_dir, ok_dir = (tmp_path / row["folder"] for row in rows)
    assert json.loads((failed_dir / "status.json").read_text())["status"] == "failed"
    assert (ok_dir / "metrics.json").is_file() and not (failed_dir / "metrics.json").exists()
    # The failed job's W&B run was finished as failed; the next job logged into a run of its own.
    (failed_run,) = offline_run_dirs(failed_dir)
    (ok_run,) = offline_run_dirs(ok_dir)
    failed_records, ok_records = read_records(failed_run), read_records(ok_run)
    assert exit_code(failed_records) == 1 and exit_code(ok_records) == 0
    assert run_record(failed_records).run_id != run_record(ok_records).run_id
    assert f"sweep-{tmp_path.name}" in run_record(ok_records).tags
    assert "1 completed, 1 failed" in (tmp_path / "summary.md").read_text()


def test_a_sweep_runs_under_the_submitit_launcher_without_code_changes(tmp_path):
    """The cluster recipe: `hydra/launcher=submitit_slurm` on SLURM; submitit_local runs the same path here."""
    done = run_sweep(tmp_path, "seed=0,1", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_summary(tmp_path)
    assert [row["status"] for row in rows] == ["completed", "completed"]
    assert [row["overrides"].split()[-1] for row in rows] == ["seed=0", "seed=1"]
    assert (tmp_path / ".submitit").is_dir()  # the jobs really ran through submitit


def test_the_same_seed_reproduces_the_run_and_another_seed_does_not(tmp_path):
    def embedding(seed: int, name: str) -> np.ndarray:
        cfg = compose_config([*TINY_STAGES, f"seed={seed}", "trainer.deterministic=true"], run_dir=tmp_path / name)
        metrics = train(cfg)
        return np.load(tmp_path / name / "embedding.npz")["embedding"], metrics

    first, first_metrics = embedding(0, "a")
    again, again_metrics = embedding(0, "b")
    other, _ = embedding(1, "c")
    np.testing.assert_array_equal(first, again)
    measured = {"train_minutes", "peak_rss_mib", "peak_gpu_mib"}  # of the machine, not of the run's result
    assert {k: v for k, v in first_metrics.items() if k not in measured} == {
        k: v for k, v in again_metrics.items() if k not in measured
    }
    assert not np.allclose(first, other)


def run_sweep_in(work, *overrides: str) -> subprocess.CompletedProcess:
    """A sweep into the default folder (multirun/<date>_<time>) of the working folder ``work``."""
    cmd = [sys.executable, str(REPO / "train.py"), "-m", *TINY_STAGES, "eval.snapshot_every=0", *overrides]
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)


def test_failed_middle_and_last_jobs_keep_the_summary_and_end_with_one_line(tmp_path):
    """Jobs 1 and 3 of 4 fail (the first failing is covered above); evaluate.py then names them."""
    done = run_sweep_in(tmp_path, "dataset.source.n_images=96,0,96,0")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "medviz: error: 2 sweep job(s) failed -- job 1 (" in done.stderr and ", job 3 (" in done.stderr
    (sweep,) = (tmp_path / "multirun").iterdir()
    assert [row["status"] for row in read_summary(sweep)] == ["completed", "failed", "completed", "failed"]
    assert "4 runs, 2 completed, 2 failed" in (sweep / "summary.md").read_text()
    out = tmp_path / "tables"
    cmd = [sys.executable, str(REPO / "evaluate.py"), f"runs=[{sweep}]", "tables=[2]", f"hydra.run.dir={out}"]
    shutil.rmtree(next(sweep.glob("2_*")))  # and a job that never started
    evaluated = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    table = (out / "table2_knn.md").read_text()
    assert "(n=1 of 3)" in table  # job 0 finished, jobs 1 and 3 failed; job 2's cell is unknown
    assert f"{sweep.name} job 3 (" in table and "failed: synthblood needs dataset.source.n_images >= 1" in table
    assert f"{sweep.name} job 2 (overrides unknown) never started" in evaluated.stderr + evaluated.stdout
