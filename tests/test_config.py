"""Every combination of config groups composes and instantiates."""

import itertools
from functools import lru_cache

import lightning as L
import pytest
from hydra.utils import instantiate
from lightning.pytorch.strategies import StrategyRegistry

from medviz.data.synthblood import load_synthblood
from medviz.methods.base import ContrastiveMethod
from medviz.methods.tsimcne import TSimCNE
from medviz.pipeline import build_loggers, build_module, build_trainer
from tests.conftest import CONF_DIR, compose_config

# Every combination of the model/training groups is built on synthblood; every dataset option is
# composed with the defaults (building those needs their files: see test_datasets.py).
GROUPS = ["method", "schedule", "aug", "backbone", "trainer", "logger"]
OPTIONS = {g: sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml")) for g in [*GROUPS, "dataset"]}
COMBOS = list(itertools.product(*(OPTIONS[g] for g in GROUPS)))


@lru_cache(maxsize=1)
def tiny_data():
    return load_synthblood(n_images=32, seed=0)


def test_every_group_has_options():
    assert OPTIONS["aug"] == ["default", "nocrop", "nogray", "nojitter", "randrot", "rot90"]
    assert set(OPTIONS["backbone"]) == {"resnet18", "resnet18_imagenet", "tinycnn"}
    assert set(OPTIONS["schedule"]) == {"stages", "anneal"}
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
    }
    assert set(OPTIONS["dataset"]) == expected


@pytest.mark.parametrize("combo", COMBOS, ids=["-".join(c) for c in COMBOS])
def test_combination_composes_and_instantiates(combo, tmp_path):
    overrides = [f"{g}={o}" for g, o in zip(GROUPS, combo, strict=True)]
    cfg = compose_config([*overrides, "batch_size=16"], run_dir=tmp_path)
    module = build_module(cfg, tiny_data())
    assert isinstance(module, ContrastiveMethod) and module.total_epochs > 0
    if isinstance(module, TSimCNE):
        assert module.total_epochs == sum(s.epochs for s in module.schedule.stages)
    # Trainers that need hardware or extra processes are built in their own tests below.
    if cfg.trainer.accelerator != "gpu" and cfg.trainer.get("strategy") is None:
        trainer = build_trainer(cfg, module, tmp_path, build_loggers(cfg))
        assert isinstance(trainer, L.Trainer) and trainer.max_epochs == module.total_epochs


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
    module = build_module(cfg, tiny_data())
    trainer = build_trainer(cfg, module, tmp_path, build_loggers(cfg))
    assert trainer.precision in ("bf16-mixed", "16-mixed")


@pytest.mark.parametrize("dataset", OPTIONS["dataset"])
def test_every_dataset_option_composes(dataset, tmp_path):
    extra = ["dataset.path=/data"] if dataset == "folder" else []
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
    aug = instantiate(compose_config(["aug=randrot"]).aug.transform, mean=[0] * 3, std=[1] * 3)
    assert aug.dihedral and aug.rotate_degrees == 45 and aug.crop_scale == (0.2, 1.0)
    assert aug.jitter == (0.4, 0.4, 0.4, 0.1) and aug.jitter_p == 0.8 and aug.gray_p == 0.2


def test_quickstart_preset_composes():
    cfg = compose_config(["experiment=quickstart"])
    assert cfg.method.name == "tsimcne" and cfg.dataset.name == "synthblood"
    assert cfg.backbone.name == "tinycnn" and cfg.eval.pixel_tsne
    assert cfg.batch_size == 128 and cfg.dataset.n_images == 2000 and list(cfg.schedule.epochs) == [100, 30, 70]
