"""Every default the paper specifies, pinned: each test fails when its value changes.

One test per default, with the paper's section. Where a value lives both in a function's signature
and in the config, both are pinned, and where it decides behaviour, the behaviour is checked too.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import sklearn.metrics

from medviz.augment import BatchAugment
from medviz.data.image_arrays import ImageArrays
from medviz.data.intensity import fixed_range
from medviz.evaluation.knn import knn_accuracy, knn_recall_per_class
from medviz.evaluation.map_metrics import map_metrics
from medviz.instantiate import build
from medviz.methods.stages import single_stage, three_stage
from medviz.training.callbacks import MapSnapshot
from tests.helpers.config import compose_config


def _default(function, name: str):
    return inspect.signature(function).parameters[name].default


# ---------------------------------------------------------------- §4 Augmentations: the border fill


def _framed(n: int, size: int, border: int, inside: int, dtype=np.uint8) -> np.ndarray:
    """(n, size, size, 3) images whose one-pixel frame is ``border`` and whose inside is ``inside``."""
    images = np.full((n, size, size, 3), inside, dtype=dtype)
    images[:, 0, :] = images[:, -1, :] = images[:, :, 0] = images[:, :, -1] = border
    return images


def test_rotation_fill_is_the_mean_of_the_border_pixels_not_of_all_pixels():
    """§4: "the average color of all border pixels across all images in a given dataset"."""
    images = _framed(4, 8, border=40, inside=200)
    images[1, 0, :] = 100  # one image's top row differs: the mean is over every border pixel of every image
    data = ImageArrays(images=images, labels=np.zeros(4, np.int64), class_names=("a",), name="framed")
    frame = np.zeros((8, 8), bool)
    frame[0, :] = frame[-1, :] = frame[:, 0] = frame[:, -1] = True
    expected = images[:, frame].reshape(-1, 3).mean(0) / 255
    assert np.allclose(data.border_colour(), expected, atol=1e-6)
    assert not np.allclose(data.border_colour(), images.reshape(-1, 3).mean(0) / 255, atol=1e-3)
    assert np.allclose(data.stats().fill, expected, atol=1e-6)


def test_rotation_fill_of_16_bit_data_is_the_border_mean_in_the_mapped_range():
    images = _framed(3, 8, border=1000, inside=60000, dtype=np.uint16)
    images[0, 3, 3] = 0  # the inside does not move the fill
    data = ImageArrays(
        images=images,
        labels=np.zeros(3, np.int64),
        class_names=("a",),
        name="framed16",
        intensity=fixed_range([0, 65535], 3),
    )
    assert np.allclose(data.border_colour(), 1000 / 65535, atol=1e-6)


def test_the_built_augmentation_fills_with_the_datasets_border_colour(tmp_path):
    from medviz.data.image_arrays import ImageStats
    from medviz.runs.rebuild import build_method

    cfg = compose_config(["backbone=tinycnn", "aug=randrot", "trainer.accelerator=cpu"], run_dir=tmp_path)
    stats = ImageStats(mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2), fill=(0.1, 0.2, 0.3))
    module = build_method(cfg, stats)
    assert module.augment.fill.flatten().tolist() == pytest.approx([0.1, 0.2, 0.3])


# ---------------------------------------------------------------- §4 Augmentations: the three sets


def test_default_augmentations_are_simclrs():
    """§4 / Fig. 1b: crops, horizontal flips, colour jitter and grayscale with SimCLR's settings."""
    expected = {
        "crop_scale": (0.2, 1.0),
        "crop_ratio": (3 / 4, 4 / 3),
        "hflip_p": 0.5,
        "jitter": (0.4, 0.4, 0.4, 0.1),
        "jitter_p": 0.8,
        "gray_p": 0.2,
        "dihedral": False,
        "rotate_degrees": 0.0,
    }
    signature = {name: p.default for name, p in inspect.signature(BatchAugment).parameters.items()}
    config = compose_config(["aug=default"]).aug.transform
    for key, value in expected.items():
        for where, source in (("BatchAugment", signature), ("conf/aug/default.yaml", config)):
            found = tuple(source[key]) if isinstance(value, tuple) else source[key]
            assert found == pytest.approx(value), f"{key} in {where}"


def test_rot90_adds_vertical_flips_and_90_degree_rotations_and_randrot_adds_45_degrees():
    """§4: (i) vertical flips and 90° rotations with p = 0.5; (ii) on top, U(-45°, 45°) with p = 1."""
    rot90 = build(compose_config(["aug=rot90"]).aug.transform, "aug")
    randrot = build(compose_config(["aug=randrot"]).aug.transform, "aug")
    assert rot90.dihedral and rot90.rotate_degrees == 0
    assert randrot.dihedral and randrot.rotate_degrees == 45
    for augment in (rot90, randrot):  # on top of the default set
        assert (augment.crop_scale, augment.hflip_p, augment.jitter_p, augment.gray_p) == ((0.2, 1.0), 0.5, 0.8, 0.2)


# ---------------------------------------------------------------- §3/§4 Architecture and training


def test_three_stages_are_1000_50_450_epochs_with_the_references_learning_rates():
    """§3: 1000 epochs 128-D, 50 epochs of a new 2-D layer alone, 450 epochs of everything in 2-D."""
    built = build(compose_config(["method=tsimcne", "schedule=stages"]).schedule, "schedule")
    for schedule in (built, three_stage()):
        stages = schedule.stages
        assert [s.epochs for s in stages] == [1000, 50, 450]
        assert [s.output for s in stages] == ["high", "2d", "2d"]
        assert [s.trains for s in stages] == ["all", "output", "all"]
        assert [s.lr_scale for s in stages] == [1.0, 1.0, 1e-3]
        assert [s.warmup_epochs for s in stages] == [10, 0, 10]


def test_simclr_and_byol_train_one_stage_of_1000_epochs():
    """§4 Baselines: SimCLR and BYOL are trained for 1000 epochs."""
    for method in ("simclr", "byol"):
        schedule = build(compose_config([f"method={method}"]).schedule, "schedule")
        assert [s.epochs for s in schedule.stages] == [1000]
        assert schedule.stages[0].output == "high"
    assert _default(single_stage, "epochs") == 1000


def test_batch_size_is_1024_and_the_learning_rate_follows_it():
    """§4: batch size 1024; SGD at lr = 0.03 * b / 256 (the reference), momentum 0.9, weight decay 5e-4."""
    cfg = compose_config([])
    assert cfg.batch_size == 1024
    assert cfg.method.base_lr == 0.03
    assert (cfg.method.optimizer.momentum, cfg.method.optimizer.weight_decay) == (0.9, 5e-4)
    assert cfg.method.module.hidden_dim == 1024 and cfg.method.module.high_dim == 128


# ---------------------------------------------------------------- §4 Evaluation in 2D


def _clusters_where_k_matters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes whose kNN accuracy differs between k = 5 and k = 15: class 1 sits in tight islands
    of 8 points among class 0, so 5 neighbours stay on an island and 15 reach into class 0."""
    rng = np.random.default_rng(seed)
    background = rng.uniform(0, 10, (400, 2))
    centres = rng.uniform(0, 10, (25, 2))
    islands = (centres[:, None, :] + rng.normal(0, 0.01, (25, 8, 2))).reshape(-1, 2)
    points = np.concatenate([background, islands])
    labels = np.r_[np.zeros(len(background), np.int64), np.ones(len(islands), np.int64)]
    return points, labels


def test_knn_accuracy_uses_15_neighbours_and_a_9_to_1_split():
    """§4: "kNN classification accuracy (with k = 15 and a 9:1 training/test split)"."""
    assert _default(knn_accuracy, "k") == 15
    assert _default(knn_accuracy, "test_size") == 0.1
    assert _default(knn_recall_per_class, "k") == 15
    assert _default(MapSnapshot.__init__, "k") == 15
    assert compose_config([]).eval.knn_k == 15
    points, labels = _clusters_where_k_matters()
    with_15, with_5 = knn_accuracy(points, labels, k=15), knn_accuracy(points, labels, k=5)
    assert with_15 != with_5  # the data tells the two apart ...
    assert knn_accuracy(points, labels) == with_15  # ... and the default is 15
    assert map_metrics(points, labels, k=compose_config([]).eval.knn_k, seed=0)["knn_accuracy"] == with_15


def test_evaluate_uses_15_neighbours():
    from hydra import compose, initialize_config_dir

    from tests.helpers.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        assert compose(config_name="evaluate").knn_k == 15


def test_silhouette_is_scikit_learns_on_the_2d_map():
    """§4: the silhouette score of the 2-D embedding, scikit-learn's implementation (Euclidean)."""
    points, labels = _clusters_where_k_matters(1)
    found = map_metrics(points, labels, k=15, seed=0)["silhouette"]
    assert found == pytest.approx(sklearn.metrics.silhouette_score(points, labels), abs=1e-9)
