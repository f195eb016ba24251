"""The GPU path on the CPU: data kept on the device, channels-last views, no per-step host syncs."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch

from medviz.data.device_batches import DeviceBatches, EpochOrder
from medviz.training.pipeline import train
from tests.helpers.config import TINY, compose_config

TINY_STAGES = [*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]"]


def batches(n=10, batch_size=4, shuffle=True, drop_last=True, rank=0, world=1, seed=0):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2).contiguous()
    return DeviceBatches(images, batch_size, EpochOrder(n, shuffle, seed, rank, world), drop_last)


def test_each_epoch_is_a_seeded_permutation_and_images_match_indices():
    loader = batches(n=12, batch_size=4)
    epochs = []
    for epoch in range(3):
        loader.sampler.set_epoch(epoch)
        seen = [(images, index) for images, index in loader]
        assert len(seen) == len(loader) == 3
        for images, index in seen:
            assert torch.equal(images[:, 0, 0, 0].long(), index)  # each image comes with its own index
        epochs.append(torch.cat([index for _, index in seen]))
        assert sorted(epochs[-1].tolist()) == list(range(12))
    assert not torch.equal(epochs[0], epochs[1])
    again = batches(n=12, batch_size=4)
    again.sampler.set_epoch(1)
    assert torch.equal(torch.cat([index for _, index in again]), epochs[1])  # same seed + epoch, same order


def test_drop_last_and_the_short_last_batch():
    assert [len(i) for _, i in batches(n=10, batch_size=4, drop_last=True)] == [4, 4]
    ordered = batches(n=10, batch_size=4, shuffle=False, drop_last=False)
    assert torch.equal(torch.cat([i for _, i in ordered]), torch.arange(10))
    assert len(ordered) == 3


def test_processes_get_disjoint_shares_of_one_permutation():
    shares = [torch.cat([i for _, i in batches(n=12, batch_size=3, rank=r, world=2)]) for r in (0, 1)]
    assert not set(shares[0].tolist()) & set(shares[1].tolist())
    assert sorted(torch.cat(shares).tolist()) == list(range(12))


def test_training_with_data_on_device_and_channels_last_is_reproducible(tmp_path):
    """Same code as on a GPU (device = CPU): it trains, is reproducible, and checkpoints the stage."""

    def run(name: str, *extra: str) -> np.ndarray:
        cfg = compose_config([*TINY_STAGES, *extra], run_dir=tmp_path / name)
        train(cfg)
        return np.load(tmp_path / name / "embedding.npz")["embedding"]

    on_device = run("a", "speed.data_on_device=true", "speed.channels_last=true")
    again = run("b", "speed.data_on_device=true", "speed.channels_last=true")
    np.testing.assert_array_equal(on_device, again)
    assert np.isfinite(on_device).all() and on_device.std() > 0
    state = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert int(state["state_dict"]["stage_index"]) == 2


def test_datamodule_serves_device_batches_when_asked_and_a_loader_otherwise():
    from torch.utils.data import DataLoader

    from medviz.data.datamodule import ArrayDataModule
    from medviz.data.synthetic.synthblood import load_synthblood

    data = load_synthblood(n_images=40)
    assert isinstance(ArrayDataModule(data, 8, on_device=True).train_dataloader(), DeviceBatches)
    assert isinstance(ArrayDataModule(data, 8, on_device="auto").train_dataloader(), DataLoader)  # CPU: no GPU
    assert isinstance(ArrayDataModule(data, 8, on_device=False).predict_dataloader(), DataLoader)


def test_the_training_step_never_reads_gpu_values_on_the_host(monkeypatch):
    """Stage and output layer come from Python attributes: reading a tensor's value (item, bool,
    int, float of a tensor) inside forward or the augmentations would stall a GPU every step."""
    from medviz.runs.rebuild import build_method

    cfg = compose_config([*TINY_STAGES])
    from medviz.data.synthetic.synthblood import load_synthblood

    module = build_method(cfg, load_synthblood(n_images=32).stats())
    module.enter_stage(2)
    images = torch.randint(0, 256, (8, 3, 28, 28), dtype=torch.uint8)

    def forbidden(*args, **kwargs):
        raise AssertionError("host read of a tensor value in the training step")

    for name in ("item", "__bool__", "__int__", "__float__", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    view_a = module.preprocess.normalise(module.augment(images, sync_free=True))
    view_b = module.preprocess.normalise(module.augment(images, sync_free=True))
    loss = module.compute_loss(view_a, view_b)["loss"]
    loss.backward()


@pytest.mark.slow
def test_compiled_backbone_trains_and_keeps_checkpoint_names(tmp_path):
    cfg = compose_config([*TINY_STAGES, "speed.compile=true"], run_dir=tmp_path)
    train(cfg)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert not any("_orig_mod" in key for key in state["state_dict"])


def test_compile_settings_follow_the_device():
    """auto: compiled backbone and augmentations on a GPU (measured faster there), eager on the CPU."""
    from medviz.data.synthetic.synthblood import load_synthblood
    from medviz.runs.rebuild import build_method

    data = load_synthblood(n_images=32)
    compiled = []
    with mock.patch.object(torch.nn.Module, "compile", autospec=True, side_effect=lambda m, **kw: compiled.append(m)):
        on_cpu = build_method(compose_config([*TINY_STAGES]), data.stats())
        assert compiled == []
        on_gpu = build_method(compose_config([*TINY_STAGES, "trainer.accelerator=gpu"]), data.stats())  # needs no GPU
    assert compiled == [on_gpu.backbone, on_gpu.augment]
    assert on_cpu.channels_last and on_gpu.channels_last
