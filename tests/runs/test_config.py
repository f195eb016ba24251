"""A run folder's config in today's keys and module paths: run folders written before modules
moved still open in every map tool."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from hydra.utils import get_object
from omegaconf import OmegaConf

from medviz.data.synthetic.synthblood import load_synthblood
from medviz.errors import ConfigError
from medviz.runs.config import MOVED_TARGETS, load_run_config, moved_target
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
