"""A run folder's config in today's keys and module paths: run folders written before modules
moved still open in every map tool."""

from __future__ import annotations

import pickle
import re
import shutil

import numpy as np
import pytest
import yaml
from hydra.utils import get_object
from omegaconf import OmegaConf

from medviz.data.synthetic.synthblood import load_synthblood
from medviz.errors import ConfigError
from medviz.runs.config import MOVED_TARGETS, allowed_target, load_run_config, moved_target
from medviz.training.pipeline import train
from tests.helpers.commands import medviz
from tests.helpers.config import CONF_DIR, TINY, compose_config

#: `_target_` values that run folders of earlier releases hold, exactly as they wrote them.
EARLIER_TARGETS = [
    "medviz.data.array_source.load_arrays",
    "medviz.data.cifar10.load_cifar10",
    "medviz.data.digits.load_digits",
    "medviz.data.folder.ingest_folder",
    "medviz.data.folder.load_folder",
    "medviz.data.leukemia.ingest_leukemia",
    "medviz.data.leukemia.load_leukemia",
    "medviz.data.medmnist_source.load_medmnist",
    "medviz.data.pcam.load_pcam",
    "medviz.data.synthblood.load_synthblood",
    "medviz.data.synthcells.load_synthcells",
    "medviz.schedules.three_stage",
    "medviz.schedules.single_stage",
]


@pytest.mark.parametrize("target", EARLIER_TARGETS)
def test_every_earlier_target_leads_to_todays_object(target):
    assert callable(get_object(moved_target(target)))


def test_todays_targets_are_left_alone():
    for target in ("medviz.data.sources.folder.load_folder", "torch.optim.SGD", "medviz.methods.tsimcne.TSimCNE"):
        assert moved_target(target) == target
    assert all(new.startswith("medviz.") and new.endswith(".") for new in MOVED_TARGETS.values())


def test_every_target_in_conf_names_an_object():
    targets = []
    for path in CONF_DIR.rglob("*.yaml"):
        for line in path.read_text().splitlines():
            if line.strip().startswith("_target_:"):
                targets.append((path.name, line.split(":", 1)[1].strip()))
    assert len(targets) > 20
    for name, target in targets:
        assert get_object(target) is not None, f"{name}: {target}"


def test_a_config_is_upgraded_wherever_a_target_sits(tmp_path):
    cfg = compose_config(TINY)
    cfg.dataset.source._target_ = "medviz.data.synthblood.load_synthblood"
    cfg.schedule._target_ = "medviz.schedules.three_stage"
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    loaded = load_run_config(tmp_path)
    assert loaded.dataset.source._target_ == "medviz.data.synthetic.synthblood.load_synthblood"
    assert loaded.schedule._target_ == "medviz.methods.stages.three_stage"


def test_a_folder_without_a_config_or_with_a_list_is_refused_clearly(tmp_path):
    with pytest.raises(ConfigError, match="no config.yaml"):
        load_run_config(tmp_path)
    (tmp_path / "config.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="is not a run config"):
        load_run_config(tmp_path)


@pytest.mark.trains
def test_a_run_folder_written_before_the_moves_opens_in_every_map_tool(tmp_path):
    run = tmp_path / "run"
    train(compose_config([*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]"], run_dir=run))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["dataset"]["source"]["_target_"] = "medviz.data.synthblood.load_synthblood"
    config["schedule"]["_target_"] = "medviz.schedules.three_stage"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    for command in ("figures", "explore", "qc"):
        done = medviz(command, "--run", str(run))
        assert done.returncode == 0, f"{command}: {done.stderr[-3000:]}"
    assert (run / "figures").is_dir() and (run / "explorer.html").is_file() and (run / "qc").is_dir()
    np.savez(tmp_path / "new.npz", images=load_synthblood(n_images=96, seed=0).images[:5])
    done = medviz("embed", "--run", str(run), "--images", str(tmp_path / "new.npz"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert np.load(run / "embedded" / "new.npz" / "embedded.npz")["embedding"].shape == (5, 2)


def test_every_target_medviz_conf_uses_is_allowed_in_a_run_folder():
    targets = {
        line.split(":", 1)[1].strip()
        for path in CONF_DIR.rglob("*.yaml")
        for line in path.read_text().splitlines()
        if line.strip().startswith("_target_:")
    }
    assert {t for t in targets if not allowed_target(t)} == set()
    assert all(allowed_target(moved_target(t)) for t in EARLIER_TARGETS)
    assert allowed_target("torch.optim.AdamW")  # torch's optimisers, whichever a user configured


@pytest.mark.parametrize(
    "target",
    [
        "torch.load",
        "numpy.load",
        "pickle.loads",
        "pandas.read_pickle",
        "joblib.load",
        "os.system",
        "builtins.eval",
        "medviz.runs.checkpoints.torch.load",  # a medviz module's attribute that is not medviz's own
        "medviz.runs.config._locate",  # private
        "torch.optim.lr_scheduler.LambdaLR",
    ],
)
def test_anything_else_is_refused_naming_the_key(tmp_path, target):
    cfg = compose_config(TINY)
    cfg.dataset.source = {"_target_": target}
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    with pytest.raises(ConfigError, match=rf"dataset\.source\._target_ names '{re.escape(target)}'"):
        load_run_config(tmp_path)


def test_a_config_that_is_not_yaml_is_refused_clearly(tmp_path):
    (tmp_path / "config.yaml").write_text("a: b: c\n")
    with pytest.raises(ConfigError, match="cannot be read as a run config"):
        load_run_config(tmp_path)


def test_a_target_made_by_an_interpolation_is_refused_too(tmp_path):
    text = OmegaConf.to_yaml(compose_config(TINY))
    text += "sneaky: '${oc.decode:\"{_target_: torch.load, f: x.pt}\"}'\n"
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError):
        load_run_config(tmp_path)


def _pickle_that_writes(marker):
    """A pickle whose loading creates ``marker`` (what a hostile file would do with os.system)."""

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps(Payload())


@pytest.mark.trains
@pytest.mark.parametrize("tool", ["figures", "explore", "qc", "embed"])
def test_a_shared_run_folder_cannot_make_the_map_tools_unpickle(shared_run, tmp_path, tool):
    run, images = shared_run
    marker = tmp_path / "pwned"
    (tmp_path / "payload.pt").write_bytes(_pickle_that_writes(marker))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["dataset"]["source"] = {"_target_": "torch.load", "f": str(tmp_path / "payload.pt"), "weights_only": False}
    hostile = tmp_path / "hostile"
    shutil.copytree(run, hostile)
    (hostile / "config.yaml").write_text(yaml.safe_dump(config))
    extra = ["--images", str(images)] if tool == "embed" else []
    done = medviz(tool, "--run", str(hostile), *extra)
    assert done.returncode == 1 and "dataset.source._target_ names 'torch.load'" in done.stderr
    assert "Traceback" not in done.stderr and not marker.exists()
    assert medviz(tool, "--run", str(run), *extra).returncode == 0  # the folder medviz wrote opens


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shared")
    run = folder / "run"
    train(compose_config([*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]"], run_dir=run))
    np.savez(folder / "new.npz", images=load_synthblood(n_images=96, seed=0).images[:5])
    return run, folder / "new.npz"
