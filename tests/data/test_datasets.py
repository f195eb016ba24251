"""Every data source on tiny files in its exact real format, and every bad input's message."""

from __future__ import annotations

import logging
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from torchvision.datasets import cifar

from medviz.data.datamodule import ArrayDataModule, MemmapImages
from medviz.data.sources.cifar10 import load_cifar10
from medviz.data.sources.folder import load_folder
from medviz.data.sources.leukemia import MERGED, load_leukemia, merge_small_classes
from medviz.data.sources.medmnist import load_medmnist
from medviz.data.sources.pcam import load_pcam
from medviz.errors import DataError
from medviz.training.pipeline import train
from tests.helpers.config import TINY, compose_config
from tests.helpers.formats import (
    write_cifar10,
    write_image_folder,
    write_medmnist_npz,
    write_pcam,
    write_tcia_tree,
)

# Per-class image counts of AML-Cytomorphology_LMU (the TCIA archive).
LEUKEMIA_COUNTS = {
    "NGS": 8484, "LYT": 3937, "MYO": 3268, "MON": 1789, "EOS": 424, "NGB": 109, "BAS": 79, "EBO": 78,
    "PMO": 70, "MYB": 42, "MOB": 26, "PMB": 18, "MMZ": 15, "KSC": 15, "LYA": 11,
}  # fmt: skip


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------- MedMNIST
def test_medmnist_concatenates_splits_in_fixed_order(tmp_path):
    write_medmnist_npz(tmp_path, "bloodmnist", n_classes=8)
    data = load_medmnist("bloodmnist", root=str(tmp_path))
    assert data.images.shape == (22, 28, 28, 3) and data.images.dtype == np.uint8
    assert list(data.split) == ["train"] * 12 + ["val"] * 4 + ["test"] * 6
    with np.load(tmp_path / "bloodmnist.npz") as npz:
        assert np.array_equal(data.images[12:16], npz["val_images"])
    assert len(data.class_names) == 8 and data.class_names[0] == "basophil"


def test_medmnist_sizes_grayscale_and_env_root(tmp_path, monkeypatch):
    write_medmnist_npz(tmp_path, "pneumoniamnist", n_classes=2, size=64, gray=True)
    monkeypatch.setenv("MEDVIZ_DATA", str(tmp_path))
    data = load_medmnist("pneumoniamnist", size=64)
    assert data.images.shape == (22, 64, 64, 3)
    assert np.array_equal(data.images[..., 0], data.images[..., 2])


def test_dermamnist_binary_is_nevi_vs_other(tmp_path):
    write_medmnist_npz(tmp_path, "dermamnist", n_classes=7)
    seven = load_medmnist("dermamnist", root=str(tmp_path))
    two = load_medmnist("dermamnist", root=str(tmp_path), binary=True)
    assert len(seven.class_names) == 7 and two.class_names == ("melanocytic nevi", "other")
    assert np.array_equal(two.labels, (seven.labels != 5).astype(int))


def test_medmnist_missing_file_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError, match=r"bloodmnist\.npz not found.*MEDVIZ_DATA.*download=true"):
        load_medmnist("bloodmnist", root=str(tmp_path))


def test_medmnist_failed_download_names_the_url_and_place(tmp_path):
    def offline(*args, **kwargs):
        raise RuntimeError("Automatic download failed!")

    with mock.patch("medmnist.BloodMNIST", side_effect=offline), pytest.raises(DataError) as err:
        load_medmnist("bloodmnist", root=str(tmp_path), download=True)
    assert "zenodo" in str(err.value).lower() and str(tmp_path / "bloodmnist.npz") in str(err.value)


def test_medmnist_truncated_and_wrong_keys(tmp_path):
    path = write_medmnist_npz(tmp_path, "bloodmnist", n_classes=8)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated"):
        load_medmnist("bloodmnist", root=str(tmp_path))
    np.savez(path, images=np.zeros((2, 28, 28, 3), np.uint8))
    with pytest.raises(DataError, match="not a MedMNIST file.*train_images"):
        load_medmnist("bloodmnist", root=str(tmp_path))


def test_unknown_flag_lists_valid_ones():
    with pytest.raises(DataError, match="unknown MedMNIST flag 'nosuchmnist'.*bloodmnist"):
        load_medmnist("nosuchmnist")


# ---------------------------------------------------------------------------- Leukemia
def test_oth_merge_gives_the_papers_seven_classes():
    mapping = merge_small_classes(LEUKEMIA_COUNTS, threshold=80)
    merged: dict[str, int] = {}
    for name, n in LEUKEMIA_COUNTS.items():
        merged[mapping[name]] = merged.get(mapping[name], 0) + n
    assert merged == {
        "NGS": 8484,
        "LYT": 3937,
        "MYO": 3268,
        "MON": 1789,
        "EOS": 424,
        MERGED: 354,
        "NGB": 109,
    }


def test_leukemia_reads_tcia_tree_merges_and_caches(tmp_path, monkeypatch):
    write_tcia_tree(tmp_path / "tcia", {"NGS": 5, "LYT": 4, "BAS": 2, "KSC": 1})
    data = load_leukemia(str(tmp_path / "tcia"), threshold=3)
    assert data.images.shape == (12, 28, 28, 3)
    assert data.class_names == ("NGS", "LYT", "OTH")
    assert data.class_counts() == {"NGS": 5, "LYT": 4, "OTH": 3}
    assert list((tmp_path / "cache" / "stores").glob("leukemia-*-28px-*/index.sqlite"))
    # The second load comes from the store: no image is decoded again.
    monkeypatch.setattr("medviz.data.sources.folder.read_resized", mock.Mock(side_effect=AssertionError("re-read")))
    again = load_leukemia(str(tmp_path / "tcia"), threshold=3)
    assert np.array_equal(again.images, data.images) and np.allclose(again.border_colour(), data.border_colour())


def test_leukemia_missing_tree(tmp_path):
    with pytest.raises(
        DataError, match="no Leukemia class folders.*dataset.root to the folder that holds AML-Cytomorphology"
    ):
        load_leukemia(str(tmp_path))


# ---------------------------------------------------------------------------- PCam
def test_pcam_six_h5_files_to_memmap(tmp_path):
    write_pcam(tmp_path / "pcam")
    data = load_pcam(str(tmp_path / "pcam"), chunk=4)
    assert isinstance(data.images, np.memmap) and data.images.shape == (12, 96, 96, 3)
    assert list(data.split) == ["train"] * 6 + ["valid"] * 3 + ["test"] * 3
    assert set(data.labels) == {0, 1} and data.border_colour().shape == (3,)
    module = ArrayDataModule(data, batch_size=4)
    assert isinstance(module.dataset, MemmapImages)
    images, index = module.dataset.__getitems__([7, 2, 9])
    assert images.shape == (3, 3, 96, 96) and index.tolist() == [7, 2, 9]
    assert np.array_equal(images[0].numpy().transpose(1, 2, 0), data.images[7])


def test_pcam_missing_file_names_it(tmp_path):
    write_pcam(tmp_path)
    (tmp_path / "camelyonpatch_level_2_split_valid_y.h5").unlink()
    with pytest.raises(DataError, match="split_valid_y.h5 not found"):
        load_pcam(str(tmp_path))


# ---------------------------------------------------------------------------- CIFAR-10
def test_cifar10_through_torchvision(tmp_path):
    write_cifar10(tmp_path)
    # Our files have the real layout but not the real bytes, so skip torchvision's md5 check.
    with mock.patch.object(cifar, "check_integrity", return_value=True):
        data = load_cifar10(str(tmp_path))
    assert data.images.shape == (60, 32, 32, 3) and data.class_names[0] == "airplane"
    assert list(data.split).count("test") == 10


def test_cifar10_missing(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        load_cifar10(str(tmp_path))


# ---------------------------------------------------------------------------- folders
def test_folder_with_classes_mixed_kinds_and_sizes(tmp_path):
    write_image_folder(tmp_path / "imgs")
    data = load_folder(str(tmp_path / "imgs"), size=32)
    assert data.images.shape == (12, 32, 32, 3) and data.class_names == ("a", "b")
    assert data.class_counts() == {"a": 6, "b": 6}
    assert [f.parent.name for f in data.files] == ["a"] * 6 + ["b"] * 6


def test_unlabelled_folder(tmp_path):
    folder = write_image_folder(tmp_path / "imgs") / "a"
    data = load_folder(str(folder))
    assert (data.labels == -1).all() and data.class_names == ()


def test_unreadable_image_is_skipped_and_counted(tmp_path, caplog):
    root = write_image_folder(tmp_path / "imgs")
    (root / "a" / "broken.png").write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING, logger="medviz"):
        data = load_folder(str(root))
    assert len(data) == 12
    assert "broken.png" in caplog.text and "skipped 1 unreadable of 13" in caplog.text


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "does not exist"),
        ("empty", "no images"),
        ("one_class", "single class folder 'a'"),
    ],
)
def test_folder_bad_layouts(tmp_path, layout, message):
    root = tmp_path / "imgs"
    if layout == "empty":
        root.mkdir()
    elif layout == "one_class":
        write_image_folder(root, classes=("a",))
    with pytest.raises(DataError, match=message):
        load_folder(str(root))


# ---------------------------------------------------------------------------- training
def _fit(dataset: str, tmp_path: Path, *extra: str) -> dict:
    cfg = compose_config(
        [
            *(o for o in TINY if not o.startswith("dataset.")),
            f"dataset={dataset}",
            "schedule.epochs=[1,1,1]",
            "batch_size=8",
            *extra,
        ],
        run_dir=tmp_path / "run",
    )
    return train(cfg)


def test_short_runs_through_real_loaders(tmp_path):
    write_medmnist_npz(tmp_path / "mm", "bloodmnist", n_classes=8)
    assert "knn_accuracy" in _fit("bloodmnist", tmp_path / "1", f"dataset.root={tmp_path / 'mm'}")
    write_tcia_tree(tmp_path / "tcia", {"NGS": 6, "LYT": 6, "BAS": 2})
    assert "knn_accuracy" in _fit(
        "leukemia",
        tmp_path / "2",
        f"dataset.root={tmp_path / 'tcia'}",
        "dataset.source.threshold=3",
    )
    write_pcam(tmp_path / "pcam", sizes=(("train", 8), ("valid", 4), ("test", 4)))
    assert "knn_accuracy" in _fit(
        "pcam",
        tmp_path / "3",
        f"dataset.root={tmp_path / 'pcam'}",
        "backbone=tinycnn",
        "num_workers=0",
    )
    write_image_folder(tmp_path / "imgs")
    assert "knn_accuracy" in _fit("folder", tmp_path / "4", f"dataset.path={tmp_path / 'imgs'}")
    unlabelled = _fit("folder", tmp_path / "5", f"dataset.path={tmp_path / 'imgs' / 'a'}", "batch_size=4")
    assert "knn_accuracy" not in unlabelled and (tmp_path / "5" / "run" / "map.png").is_file()
    write_cifar10(tmp_path / "cifar")
    with mock.patch.object(cifar, "check_integrity", return_value=True):
        assert "knn_accuracy" in _fit("cifar10", tmp_path / "6", f"dataset.root={tmp_path / 'cifar'}")


def test_cli_reports_a_missing_dataset_without_a_traceback(tmp_path):
    import subprocess
    import sys

    from tests.helpers.config import REPO

    cmd = [
        sys.executable,
        "train.py",
        "dataset=bloodmnist",
        f"dataset.root={tmp_path}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert f"medviz: error: {tmp_path / 'bloodmnist.npz'} not found" in done.stderr
    assert "Traceback" not in done.stderr
