"""The three recipes of docs/architecture.md, done for real: a new dataset, method and augmentation.

Each is registered only here (Hydra's ConfigStore stands in for the YAML file the recipe adds
under conf/) and trained end to end through ``train``, exactly as ``python train.py`` would.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.core.config_store import ConfigStore

from medviz.augment import BatchAugment
from medviz.data.image_arrays import ImageArrays
from medviz.methods.base import ContrastiveMethod
from medviz.models.heads import MLPHead
from medviz.training.pipeline import train
from tests.helpers.config import TINY, compose_config

SHORT = ["schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]", "eval.snapshot_every=0"]


# ---------------------------------------------------------------- recipe 1: a dataset source
def load_stripes(n_images: int = 48, size: int = 16, seed: int = 0) -> ImageArrays:
    """Two classes of uint8 RGB images (N, H, W, 3): horizontal or vertical stripes, random phase."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n_images) % 2
    ramp = np.arange(size)
    images = np.empty((n_images, size, size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        wave = (np.sin(ramp / 2 + rng.uniform(0, 6)) > 0).astype(np.uint8) * 200 + 30
        images[i] = (wave[:, None] if label == 0 else wave[None, :])[..., None]
    return ImageArrays(images=images, labels=labels.astype(np.int64), class_names=("rows", "columns"), name="stripes")


# ---------------------------------------------------------------- recipe 2: a method
def alignment_loss(z_a: torch.Tensor, z_b: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pull the two views' outputs together on the unit sphere, spread the batch apart (B, D each)."""
    z_a, z_b = torch.nn.functional.normalize(z_a, dim=1), torch.nn.functional.normalize(z_b, dim=1)
    alignment = (z_a - z_b).pow(2).sum(1).mean()
    uniformity = torch.pdist(z_a).pow(2).mul(-2).exp().mean().log()
    return {"loss": alignment + uniformity, "alignment": alignment, "uniformity": uniformity}


class AlignUniform(ContrastiveMethod):
    """A method is its head, its loss and its extras; the base owns step, optimiser and stages."""

    def __init__(self, backbone, augment, preprocess, schedule, optimizer, lr, grad_clip=None, out_dim: int = 16):
        super().__init__(backbone, augment, preprocess, schedule, optimizer, lr, grad_clip)
        self.head = MLPHead(backbone.out_dim, 32, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def loss(self, z_a: torch.Tensor, z_b: torch.Tensor) -> dict[str, torch.Tensor]:
        return alignment_loss(z_a, z_b)


# ---------------------------------------------------------------- recipe 3: an augmentation op
class WithNoise(BatchAugment):
    """The built-in views plus Gaussian pixel noise of a per-image random strength in [0, max_std]."""

    def __init__(self, *args, max_std: float = 0.1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_std = float(max_std)
        self.drawn_std: list[torch.Tensor] = []  # what the op drew, for the test below

    @torch.no_grad()
    def forward(self, images: torch.Tensor, sync_free: bool | None = None) -> torch.Tensor:
        x = super().forward(images, sync_free=sync_free)
        std = torch.rand(x.shape[0], 1, 1, 1, device=x.device) * self.max_std  # one strength per image
        self.drawn_std.append(std.flatten())
        return (x + std * torch.randn_like(x)).clamp(0.0, 1.0)


@pytest.fixture(scope="module", autouse=True)
def registered():
    store = ConfigStore.instance()
    store.store(
        group="dataset",
        name="stripes",
        node={"name": "stripes", "source": {"_target_": f"{__name__}.load_stripes", "n_images": 48, "size": 16}},
    )
    store.store(
        group="method",
        name="align_uniform",
        node={
            "defaults": [{"optim": "sgd"}, {"override /schedule@_global_.schedule": "single"}, "_self_"],
            "name": "align_uniform",
            "module": {"_target_": f"{__name__}.AlignUniform", "_partial_": True, "out_dim": 16},
        },
    )
    store.store(
        group="aug",
        name="noisy",
        node={
            "defaults": ["default", "_self_"],
            "name": "noisy",
            "transform": {"_target_": f"{__name__}.WithNoise", "max_std": 0.1},
        },
    )
    yield
    for group, name in (("dataset", "stripes"), ("method", "align_uniform"), ("aug", "noisy")):
        del store.repo[group][f"{name}.yaml"]  # registered for these tests only


def test_a_new_dataset_source_trains_and_maps(tmp_path):
    metrics = train(compose_config([*TINY, *SHORT, "dataset=stripes"], run_dir=tmp_path))
    saved = np.load(tmp_path / "embedding.npz")
    assert metrics["n_images"] == 96 and metrics["image_size"] == 16  # TINY asks the source for 96
    assert list(saved["class_names"]) == ["rows", "columns"] and saved["embedding"].shape == (96, 2)


def test_a_new_method_trains_for_schedule_epochs_and_gets_a_tsne_map(tmp_path):
    overrides = ["method=align_uniform", "schedule.epochs=2", "eval.snapshot_every=0", "trainer.log_every_n_steps=1"]
    cfg = compose_config([*TINY, *overrides], tmp_path)
    metrics = train(cfg)
    assert metrics["epochs"] == 2 and (tmp_path / "features.npz").is_file()  # no 2-D output: t-SNE of features
    header = (tmp_path / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/alignment", "train/uniformity"} <= set(header)


def test_a_new_augmentation_op_is_used_in_training_with_per_image_parameters(tmp_path):
    from medviz.data.synthetic.synthblood import load_synthblood
    from medviz.runs.rebuild import build_method

    cfg = compose_config([*TINY, *SHORT, "aug=noisy"], run_dir=tmp_path)
    module = build_method(cfg, load_synthblood(n_images=32).stats())
    assert isinstance(module.augment, WithNoise) and module.augment.crop_scale == (0.2, 1.0)  # default's ops kept
    views = module.augment(torch.randint(0, 256, (4096, 3, 8, 8), dtype=torch.uint8))
    assert views.min() >= 0 and views.max() <= 1
    drawn = module.augment.drawn_std[-1]
    assert drawn.std() > 0 and drawn.mean().item() == pytest.approx(0.05, abs=0.005)  # U(0, 0.1) per image
    metrics = train(cfg)
    assert metrics["n_images"] == 96 and (tmp_path / "map.png").is_file()
