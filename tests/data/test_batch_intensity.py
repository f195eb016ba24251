"""dataset.normalise=batch: each technical batch mapped to [0, 1] by its own percentiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from medviz.data.image_arrays import ImageArrays
from medviz.data.prepare.batch_intensity import per_batch_intensity
from medviz.errors import ConfigError
from medviz.methods.base import upgrade_state_dict
from medviz.models.preprocess import Preprocess
from medviz.runs.rebuild import build_data
from tests.helpers.config import TINY, compose_config


def _two_plates(gain: float = 3.0, offset: int = 400) -> ImageArrays:
    """The same 40 cells imaged on two plates: plate B brighter (gain) and with a camera offset."""
    rng = np.random.default_rng(0)
    cells = rng.integers(100, 2000, size=(40, 8, 8, 2)).astype(np.float64)
    cells[:20, :, :, 1] *= 1.5  # a phenotype in absolute intensity: half the cells brighter in channel 1
    plate_b = cells * gain + offset
    images = np.concatenate([cells, plate_b]).astype(np.uint16)
    labels = np.tile(np.repeat([0, 1], 20), 2)
    metadata = pd.DataFrame({"index": np.arange(80), "plate": ["A"] * 40 + ["B"] * 40})
    return ImageArrays(images, labels, ("bright", "dim"), "plates", metadata=metadata, batch_column="plate")


def test_each_plate_is_mapped_by_its_own_range_so_the_same_cells_match():
    data = per_batch_intensity(_two_plates(), (0.1, 99.9))
    scale = data.scale()
    assert scale.mode == "batch" and scale.batch_names == ("A", "B")
    rows = data.intensity_rows()
    assert rows.tolist() == [0] * 40 + [1] * 40
    unit = scale.to_unit(data.images, rows=rows)
    np.testing.assert_allclose(unit[:40], unit[40:], atol=2e-3)  # plate B's gain and offset are gone
    # ...while the brighter cells of each plate stay brighter: the phenotype within a plate is kept
    for plate in (slice(0, 40), slice(40, 80)):
        bright, dim = unit[plate][:20, ..., 1].mean(), unit[plate][20:, ..., 1].mean()
        assert bright > dim * 1.3
    whole = scale.to_unit(data.images)  # without rows: the dataset's range, plates apart
    assert whole[40:].mean() > 2 * whole[:40].mean()


def test_rows_follow_batch_names_not_positions():
    data = per_batch_intensity(_two_plates(), (0.1, 99.9))
    shuffled = data.metadata.iloc[::-1]["plate"]
    assert data.scale().batch_rows(shuffled).tolist() == [1] * 40 + [0] * 40
    with pytest.raises(ValueError, match="C"):
        data.scale().batch_rows(["A", "C"])


def test_statistics_and_border_use_each_plates_range():
    data = per_batch_intensity(_two_plates(), (0.1, 99.9))
    stats = data.stats()
    assert stats.intensity.mode == "batch"
    unit = data.scale().to_unit(data.images, np.float64, rows=data.intensity_rows())
    np.testing.assert_allclose(stats.mean, unit.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(stats.std, unit.std(axis=(0, 1, 2)), rtol=1e-4)
    edges = np.concatenate([unit[:, 0], unit[:, -1], unit[:, 1:-1, 0], unit[:, 1:-1, -1]], axis=1)
    np.testing.assert_allclose(stats.fill, edges.reshape(-1, 2).mean(axis=0), rtol=1e-5)


def test_batch_normalisation_needs_a_batch_column():
    data = _two_plates()
    data.batch_column = None
    with pytest.raises(ConfigError, match="dataset.batch=<column>"):
        per_batch_intensity(data, (0.1, 99.9))


def test_the_models_preprocessing_maps_each_image_by_its_batch_and_keeps_the_names_in_checkpoints():
    data = per_batch_intensity(_two_plates(), (0.1, 99.9))
    stats = data.stats()
    pre = Preprocess(list(stats.mean), list(stats.std), stats.intensity)
    images = torch.from_numpy(data.images.transpose(0, 3, 1, 2).copy())
    rows = torch.from_numpy(data.intensity_rows())
    expected = data.scale().to_unit(data.images, rows=data.intensity_rows()).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(pre.to_unit(images, rows).numpy(), expected, atol=1e-5)
    # a model built without the run's data (medviz embed) takes its batches from the checkpoint
    fresh = Preprocess(list(stats.mean), list(stats.std), None)
    fresh.load_state_dict(pre.state_dict())
    assert fresh.batch_names == ["A", "B"] and torch.equal(fresh.batch_high, pre.batch_high)
    assert fresh.batch_rows(["B", "A"]).tolist() == [1, 0]
    fresh.add_batches(["C"], torch.ones(1, 2), torch.full((1, 2), 9.0))
    assert fresh.batch_rows(["C"]).tolist() == [2]


def test_checkpoints_from_before_per_batch_ranges_still_load():
    pre = Preprocess([0.5, 0.5], [0.2, 0.2])
    state = {f"preprocess.{k}": v for k, v in pre.state_dict().items() if not k.startswith("batch_")}
    upgraded = upgrade_state_dict(state)
    fresh = Preprocess([0.5, 0.5], [0.2, 0.2])
    fresh.load_state_dict(
        {k.removeprefix("preprocess."): v for k, v in upgraded.items() if k.startswith("preprocess.")}
    )
    assert fresh.batch_names == [] and fresh.batch_low.shape == (0, 2)


def test_build_data_with_normalise_batch_on_planted_batches_and_a_subset():
    cfg = compose_config(
        [*TINY, "dataset=synthcells", "dataset.batches=3", "dataset.normalise=batch", "dataset.n_images=60"]
    )
    data = build_data(cfg)
    scale = data.scale()
    assert scale.mode == "batch" and scale.batch_names == ("batch1", "batch2", "batch3")
    names = data.metadata[data.batch_column].to_numpy()
    assert [scale.batch_names[r] for r in data.intensity_rows()] == names.tolist()
