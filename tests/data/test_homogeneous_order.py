"""Batch-homogeneous mini-batches (BEN): every training step from one technical batch."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from medviz.data.datamodule import ArrayDataModule
from medviz.data.homogeneous_order import HomogeneousOrder
from medviz.data.synthetic.synthcells import load_synthcells
from medviz.errors import ConfigError

GROUPS = np.repeat([0, 1, 2], [40, 25, 37])


def _rows(order: HomogeneousOrder, batch: int) -> np.ndarray:
    return order.indices(torch.device("cpu")).numpy().reshape(-1, batch)


def test_every_mini_batch_comes_from_one_technical_batch_and_no_image_twice():
    order = HomogeneousOrder(GROUPS, global_batch=8, seed=0)
    rows = _rows(order, 8)
    assert len(order) == rows.size == (40 // 8 + 25 // 8 + 37 // 8) * 8
    assert all(len(np.unique(GROUPS[row])) == 1 for row in rows)
    assert len(np.unique(rows)) == rows.size
    assert len({int(GROUPS[row[0]]) for row in rows[:6]}) > 1  # technical batches take turns, not in blocks


def test_order_is_seeded_changes_by_epoch_and_every_image_comes_round():
    order = HomogeneousOrder(GROUPS, global_batch=8, seed=3)
    first = _rows(order, 8)
    assert np.array_equal(first, _rows(HomogeneousOrder(GROUPS, global_batch=8, seed=3), 8))
    seen = set(first.ravel().tolist())
    for epoch in range(1, 12):
        order.set_epoch(epoch)
        rows = _rows(order, 8)
        assert not np.array_equal(rows, first)
        seen |= set(rows.ravel().tolist())
    assert seen == set(range(len(GROUPS)))  # the left-over images of one epoch are trained in others


def test_ranks_take_slices_of_the_same_global_mini_batch():
    whole = _rows(HomogeneousOrder(GROUPS, global_batch=8, seed=1), 8)
    shares = [_rows(HomogeneousOrder(GROUPS, global_batch=8, seed=1, rank=r, world_size=2), 4) for r in (0, 1)]
    for step, row in enumerate(whole):
        together = np.concatenate([shares[0][step], shares[1][step]])
        assert np.array_equal(np.sort(together), np.sort(row))  # one step's negatives: one technical batch


def test_batches_smaller_than_a_mini_batch_train_together_and_are_named(caplog):
    groups = np.repeat([0, 1, 2, 3], [40, 5, 6, 7])
    with caplog.at_level(logging.WARNING, logger="medviz"):
        order = HomogeneousOrder(groups, global_batch=8, seed=0, group_names=("P1", "P2", "P3", "P4"))
    assert "3 technical batches have fewer than 8" in caplog.text and "P2 (5 images)" in caplog.text
    rows = _rows(order, 8)
    mixed = [row for row in rows if len(np.unique(groups[row])) > 1]
    assert len(mixed) == 18 // 8 and all(set(groups[row]) <= {1, 2, 3} for row in mixed)


def _cells(batches: int = 3) -> object:
    return load_synthcells(n_images=90, size=16, seed=0, batches=batches, batch_strength=0.5)


@pytest.mark.parametrize("on_device", [False, True])
def test_the_data_module_serves_batch_homogeneous_training_batches(on_device):
    data = _cells()
    module = ArrayDataModule(data, batch_size=10, on_device=on_device, homogeneous=True)
    codes = data.batches()[0]
    batches = list(module.train_dataloader())
    assert len(batches) == 9
    for images, indices in batches:
        assert len(np.unique(codes[indices.numpy()])) == 1
        assert torch.equal(images, torch.from_numpy(data.images[indices.numpy()].transpose(0, 3, 1, 2)))
    predicted = torch.cat([i for _, i in module.predict_dataloader()])
    assert torch.equal(predicted, torch.arange(90))  # embedding still takes every image, in order


def test_homogeneous_batches_need_a_batch_column():
    with pytest.raises(ConfigError, match="dataset.batch=<column>"):
        ArrayDataModule(_cells(batches=0), batch_size=10, homogeneous=True)
