"""Planted technical batches of the built-in sets: reproducible, independent of the classes, and visible."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from medviz.data.synthetic.synthblood import load_synthblood
from medviz.data.synthetic.synthcells import load_synthcells
from medviz.errors import ConfigError


def batch_predictability(images: np.ndarray, batches: np.ndarray) -> float:
    """How well each image's mean colour tells its batch (kNN, 5-fold): the planted effect's size."""
    means = images.reshape(len(images), -1, images.shape[-1]).astype(np.float64).mean(axis=1)
    return float(cross_val_score(KNeighborsClassifier(5), means, batches, cv=5).mean())


@pytest.mark.parametrize("load", [load_synthblood, load_synthcells])
def test_batches_are_balanced_seeded_and_carried_in_the_metadata(load):
    data = load(n_images=210, seed=0, batches=3, batch_strength=0.5)
    codes, names = data.batches()
    assert names == ("batch1", "batch2", "batch3")
    assert np.bincount(codes).tolist() == [70, 70, 70]
    assert data.metadata["index"].tolist() == list(range(210))
    again = load(n_images=210, seed=0, batches=3, batch_strength=0.5)
    assert np.array_equal(again.images, data.images) and np.array_equal(again.batches()[0], codes)
    plain = load(n_images=210, seed=0)
    assert np.array_equal(plain.labels, data.labels)  # the same cells; only their imaging differs
    assert plain.metadata is None and plain.batches() is None
    # each batch holds every class: batches are technical, not biological
    assert all(len(np.unique(data.labels[codes == c])) == len(data.class_names) for c in range(3))


@pytest.mark.parametrize("load", [load_synthblood, load_synthcells])
def test_strength_sets_how_visible_the_batch_is(load):
    weak = load(n_images=300, seed=1, batches=3, batch_strength=0.0)
    strong = load(n_images=300, seed=1, batches=3, batch_strength=1.0)
    codes = strong.batches()[0]
    assert batch_predictability(strong.images, codes) > 0.65  # chance: 1/3
    assert batch_predictability(weak.images, codes) < 0.5  # strength 0: nothing planted (chance 1/3)


def test_impossible_settings_are_refused():
    with pytest.raises(ConfigError, match="dataset.batch_strength=2"):
        load_synthblood(n_images=20, batches=2, batch_strength=2)
    with pytest.raises(ConfigError, match="dataset.batches=30"):
        load_synthblood(n_images=20, batches=30)


@pytest.mark.parametrize(("load", "column"), [(load_synthblood, "cell_type"), (load_synthcells, "phenotype")])
def test_each_images_class_is_a_metadata_column_for_cross_batch_positives(load, column):
    data = load(n_images=70, seed=0, batches=2, batch_strength=0.5)
    names = np.asarray(data.class_names)[data.labels]
    assert data.metadata[column].astype(str).tolist() == names.tolist()
