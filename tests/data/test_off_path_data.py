"""Data off the fixtures' path: other dtypes, mismatched arrays, nested folders, the real archive layout."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from medviz.data.readers.dtypes import as_uint8
from medviz.data.sources.folder import load_folder
from medviz.data.sources.leukemia import load_leukemia
from medviz.data.sources.medmnist import load_medmnist
from medviz.errors import ConfigError, DataError
from medviz.training.config_checks import check_config
from tests.helpers.config import REPO, compose_config
from tests.helpers.formats import write_image_folder, write_medmnist_npz, write_tcia_tree


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))


def rewrite_npz(path, **changes) -> None:
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    for key, change in changes.items():
        arrays[key] = change(arrays[key]) if callable(change) else change
    np.savez(path, **arrays)


def as_float_images(path, scale: float) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {k: npz[k].astype(np.float32) / scale for k in npz.files if k.endswith("_images")}


def test_float_images_in_0_1_are_scaled_not_truncated(tmp_path, caplog):
    path = write_medmnist_npz(tmp_path, "bloodmnist", n_classes=8)
    original = load_medmnist("bloodmnist", root=str(tmp_path)).images
    rewrite_npz(path, **as_float_images(path, 255.0))
    with caplog.at_level(logging.WARNING, logger="medviz"):
        data = load_medmnist("bloodmnist", root=str(tmp_path))
    assert data.images.dtype == np.uint8 and np.array_equal(data.images, original)  # not {0, 1}
    assert "float32 with values 0 to 1" in caplog.text and "scaled to 0-255" in caplog.text


def test_float_images_in_0_255_keep_their_values(tmp_path):
    path = write_medmnist_npz(tmp_path, "bloodmnist", n_classes=8)
    original = load_medmnist("bloodmnist", root=str(tmp_path)).images
    rewrite_npz(path, **as_float_images(path, 1.0))
    assert np.array_equal(load_medmnist("bloodmnist", root=str(tmp_path)).images, original)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((2, 4, 4, 3), 1000, np.uint16), "uint16 with values 1000 to 1000, outside both"),
        (np.full((2, 4, 4, 3), -0.5, np.float32), "float32 with values -0.5 to -0.5"),
        (np.full((2, 4, 4, 3), np.nan, np.float64), "float64 and contain NaN or infinite"),
        (np.ones((2, 4, 4, 3), bool), "bool, which medviz cannot read"),
    ],
)
def test_other_dtypes_are_refused_naming_file_dtype_and_range(array, message):
    with pytest.raises(DataError, match=f"cells.npz: images are {message}"):
        as_uint8(array, "cells.npz")


def test_integers_within_8_bits_are_stored_unchanged():
    array = np.arange(256, dtype=np.int64).reshape(1, 16, 16, 1)
    assert np.array_equal(as_uint8(array, "x"), array.astype(np.uint8))


def test_labels_that_do_not_match_the_images_name_the_split(tmp_path):
    path = write_medmnist_npz(tmp_path, "bloodmnist", n_classes=8)
    rewrite_npz(path, train_labels=lambda y: y[:10])
    with pytest.raises(DataError, match=r"train_images has 12 images but train_labels has shape \(10, 1\)"):
        load_medmnist("bloodmnist", root=str(tmp_path))


def test_float_tiffs_in_a_folder_are_kept_as_float(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "cells" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 0.25 * (i + 1), np.float32)).save(tmp_path / "cells" / name / f"{i}.tif")
    data = load_folder(str(tmp_path / "cells"), size=8)
    assert data.images.dtype == np.float32 and data.images.shape == (6, 8, 8, 1)
    assert sorted(np.unique(data.images)) == [0.25, 0.5, 0.75]  # not truncated, not rescaled


def test_the_real_archive_layout_is_found_a_level_down(tmp_path):
    """TCIA's archive unpacks as AML-Cytomorphology_LMU/AML-Cytomorphology/<CLS>/."""
    write_tcia_tree(tmp_path / "leukemia" / "AML-Cytomorphology_LMU", {"NGS": 6, "LYT": 5, "MYB": 2})
    data = load_leukemia(str(tmp_path / "leukemia"), threshold=3)
    assert len(data) == 13 and data.class_names == ("NGS", "LYT", "OTH")


def test_no_leukemia_class_folders_names_what_was_found(tmp_path):
    (tmp_path / "leukemia" / "downloads" / "misc").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no Leukemia class folders \(BAS, .*found: downloads, downloads/misc"):
        load_leukemia(str(tmp_path / "leukemia"))


def test_leukemia_images_nested_in_class_folders_are_read(tmp_path, caplog):
    tree = write_tcia_tree(tmp_path, {"NGS": 4, "LYT": 4}) / "AML-Cytomorphology"
    (tree / "LYT" / "extra").mkdir()
    (tree / "LYT" / "LYT_0001.tiff").rename(tree / "LYT" / "extra" / "LYT_0001.tiff")
    with caplog.at_level(logging.INFO, logger="medviz"):
        data = load_leukemia(str(tmp_path), threshold=1)
    assert len(data) == 8 and "1 images lie in sub-folders of their class folder" in caplog.text


def test_folder_images_only_in_sub_sub_folders_are_found_and_labelled_by_the_top_level(tmp_path, caplog):
    for cls in ("a", "b"):
        write_image_folder(tmp_path / "cells" / cls, classes=("plate1", "plate2"), per_class=10)
    with caplog.at_level(logging.INFO, logger="medviz"):
        data = load_folder(str(tmp_path / "cells"))
    assert len(data) == 40 and data.class_names == ("a", "b")
    assert np.bincount(data.labels).tolist() == [20, 20]
    assert "40 of 40 images lie in sub-folders of the class folders" in caplog.text
    assert f"point dataset.path at the folder whose sub-folders are the classes (e.g. {tmp_path / 'cells' / 'a'})" in (
        caplog.text
    )


def test_one_folder_of_nested_images_says_where_to_point(tmp_path):
    write_image_folder(tmp_path / "cells" / "plate", classes=("x", "y"), per_class=5)
    with pytest.raises(DataError, match=r"single class folder 'plate' \(10 images\).*point dataset.path at .*plate"):
        load_folder(str(tmp_path / "cells"))


def test_a_bad_image_size_is_one_line_before_any_file_is_read(tmp_path):
    write_image_folder(tmp_path / "cells")
    cmd = [sys.executable, str(REPO / "train.py"), "dataset=folder", f"dataset.path={tmp_path / 'cells'}"]
    done = subprocess.run(
        [*cmd, "dataset.size=0", f"run_dir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "medviz: error: dataset.size must be an integer >= 8, got 0 (int); e.g. dataset.size=28"
    ]
    assert "unreadable" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dataset.size=-5", "dataset.size must be an integer >= 8, got -5"),
        ("dataset.size=abc", "dataset.size must be an integer >= 8, got 'abc' .str."),
        ("dataset.n_images=1", "dataset.n_images must be null .all images. or an integer >= 2"),
        ("dataset.source.size=4", "dataset.source.size must be an integer >= 8"),
    ],
)
def test_sizes_and_subsets_are_checked_before_anything_is_built(override, message):
    dataset = "dataset=leukemia" if override.startswith("dataset.source") else "dataset=folder"
    with pytest.raises(ConfigError, match=message):
        check_config(
            compose_config([dataset, "dataset.path=x", override] if dataset.endswith("folder") else [dataset, override])
        )
