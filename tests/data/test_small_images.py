"""Small, low-resolution images whose orientation matters: `aug=oriented`, `dataset=digits_native`
and `experiment=digits_native` (docs/reproducing.md, "digits")."""

from __future__ import annotations

import json

import numpy as np
from hydra.utils import instantiate
from sklearn.datasets import load_digits as sklearn_digits

from medviz.runs.rebuild import build_data
from medviz.training.pipeline import train
from tests.helpers.config import compose_config


def test_oriented_is_default_without_the_horizontal_flip():
    default = compose_config(["aug=default"]).aug.transform
    oriented = compose_config(["aug=oriented"]).aug.transform
    assert oriented.hflip_p == 0.0 and default.hflip_p == 0.5
    assert {k: v for k, v in oriented.items() if k != "hflip_p"} == {k: v for k, v in default.items() if k != "hflip_p"}
    assert instantiate(oriented).hflip_p == 0.0


def test_native_digits_are_the_scans_as_scanned():
    raw = sklearn_digits()
    native = build_data(compose_config(["dataset=digits_native"]))
    assert native.name == "digits" and native.images.shape == (1797, 8, 8, 3)
    assert np.array_equal(native.images[..., 0], np.round(raw.images * 255 / 16).astype(np.uint8))
    assert np.array_equal(native.labels, raw.target)
    same = build_data(compose_config(["dataset=digits", "dataset.size=8"]))
    assert np.array_equal(same.images, native.images)


def test_the_preset_sets_size_and_augmentations_and_leaves_another_datasets_size_alone():
    preset = compose_config(["experiment=digits_native"])
    quickstart = compose_config(["experiment=quickstart"])
    assert preset.dataset.name == "digits" and preset.dataset.source.size == 8
    assert preset.aug.name == "oriented" and preset.aug.transform.hflip_p == 0.0
    assert preset.schedule == quickstart.schedule and preset.backbone == quickstart.backbone
    assert preset.batch_size == quickstart.batch_size
    # With the user's own images the preset brings the augmentations, never the digits' 8 px.
    mine = compose_config(["experiment=digits_native", "dataset=folder", "dataset.path=/data/cells"])
    assert mine.dataset.name == "folder-cells" and mine.dataset.size == compose_config(["dataset=folder"]).dataset.size
    assert mine.aug.name == "oriented"


def test_the_preset_trains_a_map_of_8_pixel_images(tmp_path):
    cfg = compose_config(
        [
            "experiment=digits_native",
            "dataset.n_images=64",
            "batch_size=16",
            "schedule.epochs=[1,1,1]",
            "schedule.warmup_epochs=[0,0,0]",
            "num_workers=0",
            "eval.snapshot_every=0",
            "eval.pixel_tsne=false",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
        ],
        run_dir=tmp_path / "run",
    )
    metrics = train(cfg)
    assert metrics["image_size"] == 8 and metrics["n_images"] == 64
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["image_size"] == 8
    embedding = np.load(tmp_path / "run" / "embedding.npz")["embedding"]
    assert embedding.shape == (64, 2) and np.isfinite(embedding).all()
