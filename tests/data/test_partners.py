"""Cross-batch positives: partners share the perturbation and differ in technical batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medviz.data.device_batches import DeviceBatches, EpochOrder
from medviz.data.partners import CrossBatchPartners
from medviz.errors import ConfigError
from medviz.training.pipeline import train
from tests.helpers.config import compose_config

# 3 plates x 4 perturbations x 10 images; perturbation 4 only on plate 0; image 120 has none.
BATCHES = np.concatenate([np.repeat([0, 1, 2], 40), np.zeros(10, int), [1]])
PERTURBATIONS = np.concatenate([np.tile(np.repeat([0, 1, 2, 3], 10), 3), np.full(10, 4), [-1]])


def test_partners_share_the_perturbation_and_come_from_another_batch():
    partners = CrossBatchPartners(PERTURBATIONS, BATCHES, probability=1.0, seed=0)
    indices = np.arange(len(BATCHES))
    drawn = partners.draw(indices)
    paired = indices < 120
    assert (PERTURBATIONS[drawn[paired]] == PERTURBATIONS[paired]).all()
    assert (BATCHES[drawn[paired]] != BATCHES[paired]).all()
    assert (drawn[120:] == indices[120:]).all()  # a perturbation on one plate only, or none: itself
    assert partners.share_partnered() == pytest.approx(120 / 131)
    assert not np.array_equal(drawn, partners.draw(indices))  # fresh draws every step


def test_the_probability_sets_the_share_paired():
    partners = CrossBatchPartners(PERTURBATIONS, BATCHES, probability=0.3, seed=1)
    indices = np.tile(np.arange(120), 50)
    assert (partners.draw(indices) != indices).mean() == pytest.approx(0.3, abs=0.03)
    assert (CrossBatchPartners(PERTURBATIONS, BATCHES, probability=0.0).draw(indices) == indices).all()


def test_device_batches_bring_each_images_partner():
    images = torch.arange(len(BATCHES), dtype=torch.int16).view(-1, 1, 1, 1)
    partners = CrossBatchPartners(PERTURBATIONS, BATCHES, probability=1.0, seed=0)
    loader = DeviceBatches(images, 16, EpochOrder(len(BATCHES), True, 0), drop_last=True, partners=partners)
    for own, partner, index, partner_index in loader:
        assert torch.equal(own.view(-1).long(), index) and torch.equal(partner.view(-1).long(), partner_index)
        keep = index < 120
        assert (BATCHES[partner_index[keep].numpy()] != BATCHES[index[keep].numpy()]).all()


SCREEN = [
    "experiment=quickstart_plates",
    "dataset.plates=2",
    "dataset.wells=4",
    "dataset.sites=1",
    "backbone.width=8",
    "batch_size=32",
    "schedule.epochs=[1,1,1]",
    "schedule.warmup_epochs=[0,0,0]",
    "trainer.enable_progress_bar=false",
]


def test_a_screen_trains_with_cross_batch_positives(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
    cfg = compose_config([*SCREEN, "dataset.perturbation=Metadata_Treatment"], run_dir=tmp_path / "run")
    metrics = train(cfg)
    assert metrics["n_images"] > 32 and "batch_ilisi" in metrics


def test_cross_batch_positives_need_the_column_and_technical_batches(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
    cfg = compose_config([*SCREEN, "dataset.perturbation=Metadata_Compound"], run_dir=tmp_path / "run")
    with pytest.raises(ConfigError, match="no such column; its columns are"):
        train(cfg)
    cfg = compose_config(
        [*SCREEN, "dataset.perturbation=Metadata_Treatment", "dataset.batch=null"], run_dir=tmp_path / "b"
    )
    with pytest.raises(ConfigError, match="dataset.batch=<column>"):
        train(cfg)


def test_the_data_module_serves_partners_in_training_only():
    from medviz.data.datamodule import ArrayDataModule
    from medviz.data.synthetic.synthcells import load_synthcells

    data = load_synthcells(n_images=60, size=16, seed=0, batches=3, batch_strength=0.5)
    codes = data.batches()[0]
    partners = CrossBatchPartners(data.labels, codes, probability=1.0, seed=0)
    module = ArrayDataModule(data, batch_size=12, partners=partners)
    for _own, partner, index, partner_index in module.train_dataloader():
        assert torch.equal(partner, torch.from_numpy(data.images[partner_index.numpy()].transpose(0, 3, 1, 2)))
        assert (data.labels[partner_index.numpy()] == data.labels[index.numpy()]).all()
        assert (codes[partner_index.numpy()] != codes[index.numpy()]).all()
    assert all(len(batch) == 2 for batch in module.predict_dataloader())
