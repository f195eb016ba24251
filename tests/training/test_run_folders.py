"""Every run owns its folder: runs started together, a given run_dir, resume=true among same-second runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from medviz.errors import ConfigError
from medviz.training.pipeline import train
from medviz.training.resume import resume_folder
from medviz.training.run_folder import claim_new_folder, folder_order
from tests.helpers.config import REPO, TINY, compose_config

# Starts training runs (often in processes of their own): scheduled first, see tests/conftest.py.
pytestmark = pytest.mark.trains

SHORT = [*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]", "eval.snapshot_every=0"]
NAME = "synthblood-tsimcne-default-seed0"


def test_three_runs_started_together_get_three_folders(tmp_path):
    """The same command three times at once: three complete, separate runs in outputs/."""
    cmd = [sys.executable, str(REPO / "train.py"), *SHORT]
    runs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(3)]
    for run in runs:
        output = run.communicate(timeout=600)[0].decode()
        assert run.returncode == 0, output[-3000:]
    folders = sorted((tmp_path / "outputs").iterdir())
    assert len(folders) == 3 and all(folder_order(f.name, NAME) is not None for f in folders)
    for folder in folders:
        assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == [
            "epoch0000.ckpt",
            "epoch0001.ckpt",
            "epoch0002.ckpt",
            "last.ckpt",
        ]
        assert (folder / "embedding.npz").is_file() and (folder / "train.log").is_file()
        assert (folder / "config.yaml").read_text().count("run_name:") == 1


def test_a_taken_name_gets_a_counter_before_the_run_name(tmp_path):
    first = claim_new_folder(tmp_path, f"_{NAME}")
    second = claim_new_folder(tmp_path, f"_{NAME}")
    stamp = first.name.removesuffix(f"_{NAME}")
    assert second.name == f"{stamp}-2_{NAME}"
    assert folder_order(second.name, NAME) == (stamp, 2) > folder_order(first.name, NAME)
    assert folder_order(f"{stamp}_my_{NAME}", NAME) is None  # another run whose name ends alike


def test_resume_true_takes_the_newest_of_runs_started_in_the_same_second(tmp_path):
    for name in (f"2026-01-01_10-00-00_{NAME}", f"2026-01-01_10-00-00-2_{NAME}", f"2026-01-01_10-00-00_x_{NAME}"):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
    new = tmp_path / f"2026-01-01_10-00-05_{NAME}"
    assert resume_folder(True, new, NAME, in_multirun=False) == tmp_path / f"2026-01-01_10-00-00-2_{NAME}"


def train_in(work, *overrides: str) -> subprocess.CompletedProcess:
    """``train.py`` with the short settings, started in the working folder ``work``."""
    cmd = [sys.executable, str(REPO / "train.py"), *SHORT, *overrides]
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)


def test_a_run_folder_that_cannot_be_written_is_one_line_before_any_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = train_in(tmp_path, f"run_dir={blocker / 'run'}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"medviz: error: cannot write the run folder under {blocker / 'run'}" in done.stderr
    assert "run_dir=<folder>" in done.stderr
    assert not (tmp_path / "outputs").exists()  # Hydra's log did not land elsewhere either


def test_run_dir_goes_to_that_folder_with_its_log(tmp_path):
    done = train_in(tmp_path, f"run_dir={tmp_path / 'mine'}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    assert (tmp_path / "mine" / "train.log").is_file() and (tmp_path / "mine" / "embedding.npz").is_file()


def test_a_folder_that_holds_a_run_is_never_written_over(tmp_path):
    train(compose_config(SHORT, run_dir=tmp_path / "run"))
    before = (tmp_path / "run" / "embedding.npz").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run .*resume="):
        train(compose_config([*SHORT, "seed=1"], run_dir=tmp_path / "run"))
    assert (tmp_path / "run" / "embedding.npz").read_bytes() == before


def test_runs_of_data_read_from_a_path_are_named_after_it():
    """Every folder dataset's runs were named folder-<method>-...: the name now says which folder."""
    from medviz.training.run_folder import data_name
    from tests.helpers.config import compose_config

    assert data_name("folder", "/data/plate 1/cells/") == "folder-cells"
    assert data_name("folder", "/data/a<b>|c$") == "folder-a_b_c"  # safe as a folder name
    assert data_name("arrays", "/x/plate1.npz") == "arrays-plate1"
    assert data_name("folder", "/") == "folder"
    names = {compose_config(["dataset=folder", f"dataset.path=/data/{n}"]).run_name for n in ("wt", "ko")}
    assert names == {"folder-wt-tsimcne-default-seed0", "folder-ko-tsimcne-default-seed0"}
