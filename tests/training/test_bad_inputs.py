"""Bad input at every entry point: one clear paragraph and a non-zero exit, never a traceback or lost work.

One test per row of the table "What you see when something is wrong" in docs/resume-and-errors.md.
"""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import open_dict

from medviz.errors import ConfigError, DataError
from medviz.training.callbacks import NonFiniteLossError
from medviz.training.checkpoints import CheckpointWriteError
from medviz.training.config_checks import check_config
from medviz.training.pipeline import train
from tests.helpers.commands import medviz
from tests.helpers.config import REPO, TINY, compose_config
from tests.helpers.formats import write_image_folder

# Starts training runs (often in processes of their own): scheduled first, see tests/conftest.py.
pytestmark = pytest.mark.trains

SHORT = [*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]"]


def cli(*args: str, script: str = "train.py", cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / script), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_unknown_config_option_lists_the_valid_ones(tmp_path):
    done = cli("aug=nosuch", f"hydra.run.dir={tmp_path}")
    assert done.returncode != 0
    assert "Could not find 'aug/nosuch'" in done.stderr and "randrot" in done.stderr
    assert "Traceback" not in done.stderr


def test_wrong_type_names_the_key_and_an_example(tmp_path):
    done = cli(*SHORT, "batch_size=abc", f"hydra.run.dir={tmp_path}")
    assert done.returncode == 1
    assert "medviz: error: batch_size must be an integer >= 2, got 'abc' (str); e.g. batch_size=256" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=-1", "seed must be an integer >= 0"),
        ("method.base_lr=0", "method.base_lr must be a number > 0"),
        ("eval.pixel_tsne=maybe", "eval.pixel_tsne must be true or false"),
        ("speed.compile=sometimes", "speed.compile must be auto, true or false"),
        ("schedule.epochs=[10,0,5]", "schedule.epochs must be positive integers"),
    ],
)
def test_config_values_are_checked_before_anything_is_built(override, message):
    with pytest.raises(ConfigError, match=message):
        check_config(compose_config([*SHORT, override]))


def test_batch_larger_than_the_dataset(tmp_path):
    with pytest.raises(DataError, match=r"batch_size=200 is larger than dataset 'synthblood' \(96 images\)"):
        train(compose_config([*SHORT, "batch_size=200"], run_dir=tmp_path))


def test_a_dataset_of_one_image(tmp_path):
    with pytest.raises(DataError, match="has 1 image; contrastive training needs at least 2"):
        train(compose_config([*SHORT, "dataset.source.n_images=1"], run_dir=tmp_path))


def test_a_folder_dataset_of_one_class_says_how_to_lay_it_out(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
    folder = write_image_folder(tmp_path / "images", classes=("only",), per_class=40)
    no_size = [item for item in SHORT if not item.startswith("dataset.source.n_images")]
    cfg = compose_config([*no_size, "dataset=folder", f"dataset.path={folder}"], run_dir=tmp_path / "run")
    with pytest.raises(
        DataError, match=r"single class folder 'only' \(40 images\): a map needs no labels, so point dataset.path at"
    ):
        train(cfg)


def test_unlabelled_images_train_and_say_why_there_are_no_metrics(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
    folder = write_image_folder(tmp_path / "images", classes=("only",), per_class=40) / "only"
    no_size = [item for item in SHORT if not item.startswith("dataset.source.n_images")]
    cfg = compose_config([*no_size, "dataset=folder", f"dataset.path={folder}"], run_dir=tmp_path / "run")
    with caplog.at_level("INFO", logger="medviz"):
        metrics = train(cfg)
    assert "knn_accuracy" not in metrics and (tmp_path / "run" / "embedding.npz").is_file()
    assert "fewer than 2 labelled classes" in caplog.text


@pytest.fixture
def tsimcne_run(tmp_path) -> Path:
    run_dir = tmp_path / "run"
    train(compose_config(SHORT, run_dir=run_dir))
    return run_dir


def test_resuming_with_another_method_is_refused(tsimcne_run, tmp_path):
    cfg = compose_config([*SHORT, "method=simclr", f"resume={tsimcne_run}"], run_dir=tmp_path / "new")
    with pytest.raises(ConfigError, match="trained with method=tsimcne, this run has method=simclr"):
        train(cfg)
    assert (tsimcne_run / "logs" / "metrics.csv").is_file()  # refused before touching the folder


def test_resuming_a_run_of_other_data_is_refused_and_its_outputs_are_kept(tmp_path, monkeypatch):
    """Every folder dataset's run had the same name, and resume compared only method and backbone:
    a finished run of one folder was resumed with another and its map overwritten."""
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
    first, second = (write_image_folder(tmp_path / name, per_class=20) for name in ("first", "second"))
    folder = [*SHORT, "dataset=folder", "dataset.size=28"]
    folder = [o for o in folder if not o.startswith("dataset.source.n_images")]
    run = tmp_path / "run"
    train(compose_config([*folder, f"dataset.path={first}"], run_dir=run))
    before = {name: (run / name).read_bytes() for name in ("embedding.npz", "metrics.json", "map.png")}
    cfg = compose_config([*folder, f"dataset.path={second}", f"resume={run}"], run_dir=tmp_path / "new")
    with pytest.raises(ConfigError, match=rf"was trained on other data .*dataset.path was '{first}', now '{second}'"):
        train(cfg)
    assert {name: (run / name).read_bytes() for name in before} == before
    same = compose_config([*folder, f"dataset.path={first}", "dataset.ingest_workers=1", f"resume={run}"])
    with open_dict(same):
        same.run_dir = str(tmp_path / "again")
    train(same)  # the same data, read with other speed settings: resumed


def test_corrupt_checkpoints_only(tsimcne_run, tmp_path):
    for path in (tsimcne_run / "checkpoints").glob("*.ckpt"):
        path.write_bytes(b"\x00" * 100)
    with pytest.raises(ConfigError, match="can be read .*start the run again without resume"):
        train(compose_config([*SHORT, f"resume={tsimcne_run}"], run_dir=tmp_path / "new"))


def test_a_checkpoint_with_pickled_code_is_not_executed(tsimcne_run, tmp_path):
    """Checkpoints load weights-only: an object that would run code when unpickled is rejected."""
    last = tsimcne_run / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    marker = tmp_path / "executed"
    state["payload"] = _RunsCode(marker)
    torch.save(state, last)
    train(compose_config([*SHORT, f"resume={tsimcne_run}"], run_dir=tmp_path / "new"))  # falls back, no code runs
    assert not marker.exists()
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(last, weights_only=True)


class _RunsCode:
    """Unpickling this creates a file: the kind of code a malicious checkpoint could carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_from_a_folder_that_does_not_exist(tmp_path):
    done = cli(*SHORT, f"resume={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 1
    assert f"medviz: error: resume={tmp_path / 'nope'}: there is no such run folder" in done.stderr
    assert "Traceback" not in done.stderr


def test_resume_true_without_an_earlier_run(tmp_path):
    with pytest.raises(ConfigError, match="resume=true found no earlier run"):
        train(compose_config([*SHORT, "resume=true"], run_dir=tmp_path / "2026-01-01_synthblood-tsimcne-default-seed0"))


def test_evaluate_a_run_folder_that_does_not_exist(tmp_path):
    done = cli(f"run={tmp_path / 'nope'}", script="evaluate.py", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"medviz: error: run folder {tmp_path / 'nope'} does not exist" in done.stderr


def test_full_disk_while_saving_reports_itself_and_keeps_earlier_checkpoints(tmp_path, monkeypatch):
    import medviz.training.checkpoints as checkpoints

    real_save, calls = torch.save, []

    def disk_fills_up(obj, file, *args, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # epoch0000.ckpt and last.ckpt are written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, file, *args, **kwargs)

    monkeypatch.setattr(checkpoints.torch, "save", disk_fills_up)
    with pytest.raises(CheckpointWriteError, match="could not write checkpoint .*: the disk is full"):
        train(compose_config(SHORT, run_dir=tmp_path))
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch0000.ckpt", "last.ckpt"]  # no temporary files left
    monkeypatch.setattr(checkpoints.torch, "save", real_save)
    assert "state_dict" in torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)


def test_a_non_finite_loss_stops_the_run_and_names_where(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"NaN or infinite at stage1-128d, epoch 0, step \d+ \(batch \d+"):
        train(compose_config([*SHORT, "method.base_lr=1e30"], run_dir=tmp_path))
    assert not (tmp_path / "embedding.npz").exists()


def test_outputs_go_to_the_run_folder_only(tmp_path):
    """Nothing lands in the working folder, the package or the configs -- only the run folder."""

    def tree(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts}

    before = {name: tree(REPO / name) for name in ("medviz", "conf", "benchmarks")}
    work = tmp_path / "work"
    work.mkdir()
    done = cli(*SHORT, "hydra.run.dir=run", cwd=work)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in work.iterdir()) == ["run"]
    assert {name: tree(REPO / name) for name in before} == before
    assert np.load(work / "run" / "embedding.npz")["embedding"].shape == (96, 2)


@pytest.mark.parametrize(
    ("override", "group"),
    [
        ("aug.transform.crop_scale=abc", "aug"),
        ("backbone.width=wide", "backbone"),
        ("method.module.hidden_dim=-5", "method"),
    ],
)
def test_a_wrong_value_inside_a_group_names_the_group(override, group, tmp_path):
    with pytest.raises(ConfigError, match=f"could not build `{group}` from the config .*check the {group}.\\* values"):
        train(compose_config([*SHORT, override], run_dir=tmp_path))


def test_one_number_for_the_three_stages_is_refused_with_an_example(tmp_path):
    with pytest.raises(ConfigError, match=r"schedule.epochs=5: the three-stage schedule needs one value per stage"):
        train(compose_config([*SHORT, "schedule.epochs=5"], run_dir=tmp_path))
    done = cli(*SHORT, "schedule.epochs=5", f"hydra.run.dir={tmp_path / 'cli'}")
    assert done.returncode == 1 and "schedule.epochs=[1000, 50, 450]" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset=folder"], "dataset.path must be set; e.g. dataset.path=/path/to/images"),
        (["dataset=folder", "dataset.path={folder}", "dataset.size=-3"], "dataset.size must be an integer >= 8"),
    ],
)
def test_train_and_ingest_check_the_same_settings_with_the_same_words(tmp_path, monkeypatch, overrides, message):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
    folder = write_image_folder(tmp_path / "images")
    overrides = [o.format(folder=folder) for o in overrides]
    trained = cli(*overrides, f"hydra.run.dir={tmp_path / 'run'}")
    ingested = medviz("ingest", *overrides)
    for done in (trained, ingested):
        assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "cache").exists()  # no junk store was built
