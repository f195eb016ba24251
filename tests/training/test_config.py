"""Every combination of config groups composes and instantiates."""

import itertools
from functools import lru_cache

import lightning as L
import pytest
from hydra.utils import instantiate
from lightning.pytorch.strategies import StrategyRegistry

from medviz.data.synthetic.synthblood import load_synthblood
from medviz.errors import ConfigError
from medviz.methods.base import ContrastiveMethod
from medviz.runs.rebuild import build_method
from medviz.training.build import build_loggers, build_trainer
from tests.helpers.config import CONF_DIR, compose_config

# Each option of each group, in every pair with the options of a group it interacts with, is
# composed and built on synthblood (every dataset option is composed with the defaults; building
# those needs their files: see test_datasets.py and test_presets.py). The method reads the schedule
# (its stages), the backbone (its head's input width), the trainer (max_epochs, DDP) and the
# augmentations (built with the data's border colour, moved and compiled with the method); the
# loggers go with the trainer. No other group reads another, so the full cross product (1,728
# combinations) checks nothing the pairs do not.
GROUPS = ["method", "schedule", "aug", "backbone", "trainer", "logger"]
OPTIONS = {g: sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml")) for g in [*GROUPS, "dataset"]}
INTERACTING = [
    ("method", "schedule"),
    ("method", "backbone"),
    ("method", "trainer"),
    ("method", "aug"),
    ("trainer", "logger"),
]
PAIRS = [
    ((a, option_a), (b, option_b))
    for a, b in INTERACTING
    for option_a, option_b in itertools.product(OPTIONS[a], OPTIONS[b])
]
# The schedules each method can train: SimCLR and BYOL have no 2-D output, t-SimCNE must end in one.
SUPPORTED = {"tsimcne": {"stages", "stages_cpu", "anneal"}, "simclr": {"single"}, "byol": {"single"}}


@lru_cache(maxsize=1)
def tiny_data():
    return load_synthblood(n_images=32, seed=0)


def test_every_group_has_options():
    assert OPTIONS["aug"] == ["default", "fluorescence", "nocrop", "nogray", "nojitter", "oriented", "randrot", "rot90"]
    assert set(OPTIONS["backbone"]) == {"resnet18", "resnet18_imagenet", "tinycnn"}
    assert set(OPTIONS["schedule"]) == {"stages", "stages_cpu", "anneal", "single"}
    expected = {
        "synthblood",
        "medmnist",
        "bloodmnist",
        "dermamnist",
        "pathmnist",
        "leukemia",
        "pcam",
        "folder",
        "cifar10",
        "synthcells",
        "arrays",
        "digits",
        "digits_native",
        "cellprofiler",
        "deepprofiler",
        "masks",
        "synthplates",
        "rxrx1",
        "camelyon17",
    }
    assert set(OPTIONS["dataset"]) == expected


def test_the_pairs_cover_every_option_of_every_group():
    covered = {choice for pair in PAIRS for choice in pair}
    assert covered == {(group, option) for group in GROUPS for option in OPTIONS[group]}
    assert set(SUPPORTED) == set(OPTIONS["method"])


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{a}={x}-{b}={y}" for (a, x), (b, y) in PAIRS])
def test_each_pair_of_interacting_options_composes_and_builds(pair, tmp_path):
    overrides = [f"{group}={option}" for group, option in pair]
    if "backbone" not in dict(pair):  # pairs without the backbone need none of ResNet18's 11M weights
        overrides.append("backbone=tinycnn")
    cfg = compose_config([*overrides, "batch_size=16"], run_dir=tmp_path)
    choices = dict(pair)
    if "schedule" in choices and choices["schedule"] not in SUPPORTED[cfg.method.name]:
        with pytest.raises(ConfigError, match=r"cannot train stage .* Use a schedule it supports|must end in a stage"):
            build_method(cfg, tiny_data().stats())
        return
    module = build_method(cfg, tiny_data().stats())
    assert isinstance(module, ContrastiveMethod) and module.total_epochs == module.schedule.total_epochs > 0
    if cfg.method.name != "tsimcne":
        assert len(module.schedule.stages) == 1 and module.total_epochs == cfg.schedule.epochs
    # Trainers that need hardware or extra processes are built in their own tests below.
    if cfg.trainer.accelerator != "gpu" and cfg.trainer.get("strategy") is None:
        trainer = build_trainer(cfg, module, tmp_path, build_loggers(cfg))
        assert isinstance(trainer, L.Trainer) and trainer.max_epochs == module.total_epochs


def test_baselines_default_to_one_stage_and_schedule_epochs_means_the_same_everywhere():
    for method in ("simclr", "byol"):
        cfg = compose_config([f"method={method}", "schedule.epochs=7"])
        assert cfg.schedule._target_.endswith("single_stage") and cfg.schedule.epochs == 7
        assert build_method(cfg, tiny_data().stats()).total_epochs == 7
    with pytest.raises(ConfigError, match="SimCLR cannot train stage 'anneal' .* schedule=single"):
        build_method(compose_config(["method=simclr", "schedule=anneal"]), tiny_data().stats())


def test_loggers_combine_and_default_to_csv(tmp_path):
    assert [type(lg).__name__ for lg in build_loggers(compose_config([], run_dir=tmp_path))] == ["CSVLogger"]
    combined = build_loggers(compose_config(["logger=[csv,wandb]"], run_dir=tmp_path))
    assert [type(lg).__name__ for lg in combined] == ["CSVLogger", "WandbLogger"]


def test_ddp_strategy_is_registered():
    cfg = compose_config(["trainer=ddp"])
    assert cfg.trainer.strategy in StrategyRegistry


@pytest.mark.gpu
def test_gpu_trainer_uses_bf16(tmp_path):
    cfg = compose_config(["trainer=gpu", "backbone=tinycnn", "batch_size=16"], run_dir=tmp_path)
    module = build_method(cfg, tiny_data().stats())
    trainer = build_trainer(cfg, module, tmp_path, build_loggers(cfg))
    assert trainer.precision in ("bf16-mixed", "16-mixed")


@pytest.mark.parametrize("dataset", OPTIONS["dataset"])
def test_every_dataset_option_composes(dataset, tmp_path):
    extra = {
        "folder": ["dataset.path=/data"],
        "arrays": ["dataset.path=/data/cells.npz"],
        "cellprofiler": ["dataset.path=/data/analysis"],
        "deepprofiler": ["dataset.path=/data/project"],
        "masks": ["dataset.path=/data/fields"],
    }.get(dataset, [])
    cfg = compose_config([f"dataset={dataset}", *extra], tmp_path)
    assert cfg.dataset.source._target_.startswith("medviz.data.")
    assert isinstance(cfg.dataset.name, str) and cfg.dataset.name


def test_paper_defaults():
    cfg = compose_config([])
    assert cfg.batch_size == 1024 and cfg.backbone.name == "resnet18"
    assert list(cfg.schedule.epochs) == [1000, 50, 450]
    assert list(cfg.schedule.lr_scale) == [1.0, 1.0, 0.001]
    assert list(cfg.schedule.warmup_epochs) == [10, 0, 10]
    assert cfg.method.base_lr * cfg.batch_size / 256 == pytest.approx(0.12)
    aug = instantiate(compose_config(["aug=randrot"]).aug.transform)
    assert aug.dihedral and aug.rotate_degrees == 45 and aug.crop_scale == (0.2, 1.0)
    assert aug.jitter == (0.4, 0.4, 0.4, 0.1) and aug.jitter_p == 0.8 and aug.gray_p == 0.2


def test_quickstart_preset_composes():
    cfg = compose_config(["experiment=quickstart"])
    assert cfg.method.name == "tsimcne" and cfg.dataset.name == "synthblood"
    assert cfg.backbone.name == "tinycnn" and cfg.eval.pixel_tsne
    assert cfg.batch_size == 128 and cfg.dataset.n_images == 2000 and list(cfg.schedule.epochs) == [100, 30, 70]
