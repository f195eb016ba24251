"""Experiment tracking: an offline W&B run of a tiny training, combined loggers, closing failed runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from medviz.errors import ConfigError
from medviz.training.pipeline import train
from tests.helpers.config import REPO, TINY, compose_config
from tests.helpers.wandb_records import (
    config_keys,
    config_value,
    exit_code,
    history_keys,
    media_types,
    offline_run_dirs,
    read_records,
    run_record,
)

TINY_STAGES = [*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]", "trainer.log_every_n_steps=1"]


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory):
    """A tiny 3-stage run logged to CSV and to W&B in offline mode (conftest sets WANDB_MODE=offline)."""
    run_dir = tmp_path_factory.mktemp("wandb_run")
    settings = [*TINY_STAGES, "logger=[csv,wandb]", "seed=3", "aug=rot90", "dataset.batches=2"]
    cfg = compose_config(settings, run_dir=run_dir)
    metrics = train(cfg)
    (offline,) = offline_run_dirs(run_dir)
    return run_dir, offline, read_records(offline), metrics


def test_wandb_run_is_named_grouped_and_tagged_from_the_config(wandb_run):
    _, _, records, _ = wandb_run
    run = run_record(records)
    assert run.display_name == "synthblood-tsimcne-rot90-seed3"
    assert run.run_group == "synthblood-tsimcne-rot90"  # seeds of one setting share a group
    assert set(run.tags) == {"synthblood", "tsimcne", "aug-rot90", "seed-3"}
    assert run.project == "medviz"


def test_wandb_run_config_is_the_resolved_config(wandb_run):
    run_dir, _, records, _ = wandb_run
    assert {"dataset", "method", "aug", "backbone", "schedule", "seed", "batch_size"} <= config_keys(records)
    assert config_value(records, "seed") == 3
    assert config_value(records, "aug")["name"] == "rot90"
    assert config_value(records, "run_dir") == str(run_dir)  # resolved, not "${hydra:...}"


def test_wandb_logs_steps_snapshots_images_and_table(wandb_run):
    _, offline, records, metrics = wandb_run
    keys = history_keys(records)
    per_step = {"train/loss", "train/alignment", "train/uniformity", "train/lr", "train/stage"}
    per_snapshot = {"map/knn_accuracy", "map/silhouette", "map/spread", "time/train_minutes"}
    final = {"final/knn_accuracy", "final/silhouette", "final/train_minutes", "final/batch_ilisi", "final/scib_total"}
    assert per_step | per_snapshot | final <= keys
    assert media_types(records) == {
        "map/image": "images/separated",  # the subset's map at each stage end
        "map/final": "images/separated",  # map.png of all images
        "map/embedding": "table-file",
    }
    assert exit_code(records) == 0

    images = sorted((offline / "files" / "media" / "images").rglob("*.png"))
    # Stage-end maps of stages 2 and 3 (stage 1 has no 2-D output), then the final full map.
    assert sum("image_" in p.name for p in images) == 2 and sum("final_" in p.name for p in images) == 1

    (table_file,) = (offline / "files" / "media" / "table").rglob("*.table.json")
    table = json.loads(table_file.read_text())
    # with the metadata: the planted batch and each image's class as a column of its own
    assert table["columns"] == ["index", "x", "y", "label", "class", "image", "batch", "cell_type"]
    assert len(table["data"]) == metrics["n_images"] == 96
    assert {row[-2] for row in table["data"]} == {"batch1", "batch2"}
    index, x, y, label, name, _, _, cell_type = table["data"][0]
    assert index == 0 and isinstance(x, float) and isinstance(y, float) and 0 <= label < 8 and isinstance(name, str)
    assert cell_type == name  # the class, as the metadata names it


def test_wandb_thumbnails_are_staged_inside_the_run_folder(wandb_run):
    run_dir, _, _, _ = wandb_run
    staged = [p for p in (run_dir / "wandb" / "artifacts" / "staging").iterdir() if p.is_file()]
    pngs = [p for p in staged if p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"]
    assert len(pngs) == 96  # one thumbnail per table row, kept with the run for `wandb sync`


def test_loggers_combine_csv_beside_wandb(wandb_run):
    run_dir, _, _, _ = wandb_run
    header = (run_dir / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "map/knn_accuracy", "final/knn_accuracy"} <= set(header)
    assert sorted(p.name for p in (run_dir / "maps").glob("*.png")) == ["epoch0002.png", "epoch0003.png"]


def test_wandb_offline_run_prints_the_sync_command(tmp_path, capsys):
    cfg = compose_config([*TINY_STAGES, "logger=wandb", "eval.table_size=10"], run_dir=tmp_path)
    train(cfg)
    (offline,) = offline_run_dirs(tmp_path)
    assert f"wandb sync {offline}" in capsys.readouterr().out


def test_a_failed_run_closes_its_wandb_run_as_failed_and_the_next_run_gets_its_own(tmp_path):
    import wandb

    bad = compose_config([*TINY_STAGES, "logger=wandb", "dataset.source.n_images=0"], run_dir=tmp_path / "bad")
    with pytest.raises(ConfigError, match="n_images"):
        train(bad)
    assert wandb.run is None  # finished: the next job of a sweep must not log into it
    (offline,) = offline_run_dirs(tmp_path / "bad")
    assert exit_code(read_records(offline)) == 1

    good = compose_config([*TINY_STAGES, "logger=wandb", "eval.table_size=10"], run_dir=tmp_path / "good")
    train(good)
    (second,) = offline_run_dirs(tmp_path / "good")
    assert run_record(read_records(second)).run_id != run_record(read_records(offline)).run_id


def test_wandb_without_login_or_offline_mode_says_what_to_do(tmp_path):
    """A fresh process (W&B keeps its settings per process): no key, no offline mode -> a clear error, exit 1."""
    env = {
        **os.environ,
        "WANDB_MODE": "online",
        "HOME": str(tmp_path),  # no ~/.netrc, no stored key
        "NETRC": str(tmp_path / "netrc"),
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
    }
    env.pop("WANDB_API_KEY", None)
    cmd = [sys.executable, "train.py", *TINY_STAGES, "logger=wandb", f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert re.search(r"medviz: error: logger=wandb .*wandb login.*WANDB_MODE=offline.*wandb sync", done.stderr)
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()  # it failed before training
