"""RxRx1-WILDS, Camelyon17-WILDS and PCam's meta tables: read in their exact layouts, matched by path."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from medviz.data.sources.pcam import camelyon16_centre, load_pcam
from medviz.data.sources.wilds import load_camelyon17, load_rxrx1
from medviz.errors import DataError
from medviz.runs.rebuild import build_data
from tests.helpers.config import compose_config
from tests.helpers.formats import write_pcam
from tests.helpers.wilds_formats import row_of, write_camelyon17, write_pcam_meta, write_rxrx1


def _check_rows(data, rows: list[dict], key: str) -> None:
    """Every image is the one its metadata row names (pixel (0, 0) encodes the table row)."""
    for image, (_, meta) in zip(np.asarray(data.images), data.metadata.iterrows(), strict=True):
        assert str(rows[row_of(image)][key]) == str(meta[key])


def test_rxrx1_reads_its_table_and_images_with_experiments_as_batches(tmp_path):
    rows = write_rxrx1(tmp_path / "rxrx1_v1.0")
    data = load_rxrx1(str(tmp_path / "rxrx1_v1.0"), size=32, cache_dir=str(tmp_path / "cache"))
    assert len(data) == 16 and data.images.shape[1:] == (32, 32, 3)
    assert data.class_names == ("HEPG2", "HUVEC") and data.batch_column == "experiment"
    assert data.batches()[1] == ("HEPG2-01", "HUVEC-02")
    assert {"site_id", "well_type", "sirna", "sirna_id", "path"} <= set(data.metadata.columns)
    _check_rows(data, rows, "site_id")
    assert data.metadata["path"].iloc[0].startswith("images/HEPG2-01/Plate1/")


def test_a_missing_image_is_left_out_and_named(tmp_path, caplog):
    rows = write_rxrx1(tmp_path / "rx")
    (tmp_path / "rx" / "images" / "HUVEC-02" / "Plate2" / "C03_s2.png").unlink()
    with caplog.at_level(logging.WARNING, logger="medviz"):
        data = load_rxrx1(str(tmp_path / "rx"), size=32, cache_dir=str(tmp_path / "cache"))
    assert len(data) == 15 and "1 of the 16 images" in caplog.text and "C03_s2.png" in caplog.text
    _check_rows(data, rows, "site_id")


def test_a_table_of_another_layout_is_refused_with_its_columns(tmp_path):
    write_rxrx1(tmp_path / "rx")
    table = pd.read_csv(tmp_path / "rx" / "metadata.csv").drop(columns=["sirna_id"])
    table.to_csv(tmp_path / "rx" / "metadata.csv", index=False)
    with pytest.raises(DataError, match="lacks the column"):
        load_rxrx1(str(tmp_path / "rx"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError, match="metadata.csv not found"):
        load_rxrx1(str(tmp_path / "elsewhere"), cache_dir=str(tmp_path / "cache"))


def test_camelyon17_reads_its_patches_with_hospitals_as_batches(tmp_path):
    rows = write_camelyon17(tmp_path / "camelyon17_v1.0")
    data = load_camelyon17(str(tmp_path / "camelyon17_v1.0"), size=24, cache_dir=str(tmp_path / "cache"))
    assert len(data) == 18 and data.class_names == ("0", "1")
    assert data.batches()[1] == ("0", "1", "2")
    _check_rows(data, rows, "slide")
    assert data.metadata["path"].iloc[0].startswith("patches/patient_004_node_0/patch_patient_004_node_0_x_")


def test_camelyon17_patients_without_their_zeros_still_find_their_patches(tmp_path):
    rows = write_camelyon17(tmp_path / "c17")
    table = pd.read_csv(tmp_path / "c17" / "metadata.csv", index_col=0)  # patient read as a number: 004 -> 4
    table.to_csv(tmp_path / "c17" / "metadata.csv")
    data = load_camelyon17(str(tmp_path / "c17"), size=24, cache_dir=str(tmp_path / "cache"))
    assert len(data) == 18
    _check_rows(data, rows, "slide")


def test_pcam_slides_give_their_hospital():
    assert camelyon16_centre("camelyon16_train_normal_001") == "RUMC"
    assert camelyon16_centre("camelyon16_train_normal_100") == "RUMC"
    assert camelyon16_centre("camelyon16_train_normal_101") == "UMCU"
    assert camelyon16_centre("camelyon16_train_tumor_070") == "RUMC"
    assert camelyon16_centre("camelyon16_train_tumor_071") == "UMCU"
    assert camelyon16_centre("camelyon16_train_tumor_111") is None
    assert camelyon16_centre("camelyon16_test_001") is None


def test_pcam_with_its_meta_tables_carries_slide_and_hospital(tmp_path):
    write_pcam(tmp_path / "pcam")
    write_pcam_meta(tmp_path / "pcam")
    data = load_pcam(str(tmp_path / "pcam"), cache_dir=str(tmp_path / "cache"))
    meta = data.metadata
    assert len(meta) == 12 and list(meta["split"]) == ["train"] * 6 + ["valid"] * 3 + ["test"] * 3
    assert meta["centre"].tolist()[:3] == ["RUMC", "UMCU", "RUMC"] and meta["centre"].iloc[-1] is None
    assert (meta["center_tumor_patch"].astype(bool).astype(int).to_numpy() == data.labels).all()


def test_pcam_by_hospital_leaves_out_the_test_slides_when_asked(tmp_path, monkeypatch):
    write_pcam(tmp_path / "pcam")
    write_pcam_meta(tmp_path / "pcam")
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
    base = ["dataset=pcam", f"dataset.root={tmp_path / 'pcam'}", "dataset.batch=centre"]
    with pytest.raises(Exception, match="drop_missing"):
        build_data(compose_config(base))
    data = build_data(compose_config([*base, "dataset.drop_missing=true"]))
    assert len(data) == 9 and data.batches()[1] == ("RUMC", "UMCU")


def test_a_meta_table_of_another_release_is_refused(tmp_path):
    write_pcam(tmp_path / "pcam")
    write_pcam_meta(tmp_path / "pcam", sizes=(("train", 5), ("valid", 3), ("test", 3)))
    with pytest.raises(DataError, match="5 rows but its split has 6"):
        load_pcam(str(tmp_path / "pcam"), cache_dir=str(tmp_path / "cache"))
