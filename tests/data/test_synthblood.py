import numpy as np
import pytest
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from medviz.data.synthetic.synthblood import CLASS_NAMES, load_synthblood, make_synthblood


def test_layout_and_determinism():
    images, labels = make_synthblood(64, seed=3)
    assert images.shape == (64, 28, 28, 3) and images.dtype == np.uint8  # MedMNIST layout
    assert labels.shape == (64,) and labels.dtype == np.int64
    again, again_labels = make_synthblood(64, seed=3)
    assert np.array_equal(images, again) and np.array_equal(labels, again_labels)
    other, _ = make_synthblood(64, seed=4)
    assert not np.array_equal(images, other)


def test_eight_bloodmnist_classes_and_arrays():
    data = load_synthblood(400, seed=0)
    assert data.class_names == CLASS_NAMES and len(CLASS_NAMES) == 8
    assert set(np.unique(data.labels)) == set(range(8))
    assert sum(data.class_counts().values()) == 400
    fill = data.border_colour()
    assert fill.shape == (3,) and (fill > 0).all() and (fill < 1).all()
    # The border colour is the mean of the one-pixel frame over all images.
    frame = np.concatenate(
        [data.images[:, 0], data.images[:, -1], data.images[:, 1:-1, 0], data.images[:, 1:-1, -1]],
        axis=1,
    )
    assert np.allclose(fill, frame.reshape(-1, 3).mean(0) / 255, atol=1e-6)


def test_not_trivially_easy_on_raw_pixels():
    """Design §6: kNN (k=15) on raw pixels stays at most ~0.80, but well above chance (1/8)."""
    images, labels = make_synthblood(2400, seed=0)
    x = images.reshape(len(images), -1).astype(np.float32) / 255
    x_tr, x_te, y_tr, y_te = train_test_split(x, labels, test_size=0.1, stratify=labels, random_state=0)
    accuracy = KNeighborsClassifier(15).fit(x_tr, y_tr).score(x_te, y_te)
    assert 0.3 < accuracy <= 0.80


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_images"):
        make_synthblood(0)
    with pytest.raises(ValueError, match="class_weights"):
        make_synthblood(10, class_weights=(1.0, 2.0))
