"""CellProfiler's exports (ExportToSpreadsheet CSVs, ExportToDatabase SQLite) cut into crops by identity."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from medviz.data.sources.plates import load_cellprofiler
from medviz.errors import DataError
from tests.helpers.plates import (
    CHANNELS,
    assert_crops_match_their_rows,
    write_merged_objects,
    write_screen,
    write_spreadsheet,
    write_sqlite,
)

BOX = 16


def test_spreadsheet_export_from_another_machine_is_re_rooted_and_cut_by_identity(tmp_path, caplog):
    screen = write_screen(tmp_path / "here" / "screen")
    tables = write_spreadsheet(screen, tmp_path / "export", path_root="/home/lab/screen")
    with caplog.at_level(logging.INFO, logger="medviz"):
        data = load_cellprofiler(str(tables), images_root=str(tmp_path / "here"), box=BOX, workers=1)
    assert "re-rooted: /home/lab/screen/P1 ->" in caplog.text
    assert data.images.shape == (12, BOX, BOX, 2) and data.images.dtype == np.uint16  # 16-bit stays 16-bit
    assert_crops_match_their_rows(data, screen, BOX)
    assert data.channel_names == CHANNELS
    meta = data.metadata
    assert {"Metadata_Plate", "Metadata_Well", "Metadata_Site", "ImageNumber", "ObjectNumber"} <= set(meta.columns)
    assert {"Location_Center_X", "Location_Center_Y"} <= set(meta.columns)
    assert meta.loc[meta["ImageNumber"] == 3, "Metadata_Plate"].unique().tolist() == ["P2"]
    assert [f.relative_to(tables).as_posix() for f in data.files[:2]] == ["P1/1/1", "P1/1/2"]


def test_a_missing_image_names_the_file_and_the_key_to_set(tmp_path):
    screen = write_screen(tmp_path / "screen", plates=("P1",), wells=("A01",))
    tables = write_spreadsheet(screen, tmp_path / "export", path_root="/home/lab/screen")
    with pytest.raises(DataError, match=r"/home/lab/screen/P1/P1_A01_s1_OrigDNA.tif .*row 2.*dataset.images_root"):
        load_cellprofiler(str(tables), box=BOX, workers=1)


def test_sqlite_export_with_prefixed_columns_gives_the_same_crops_and_metadata(tmp_path):
    screen = write_screen(tmp_path / "screen")
    from_csv = load_cellprofiler(str(write_spreadsheet(screen, tmp_path / "csv")), box=BOX, workers=1)
    from_db = load_cellprofiler(str(write_sqlite(screen, tmp_path / "screen.sqlite")), box=BOX, workers=1)
    np.testing.assert_array_equal(np.asarray(from_db.images), np.asarray(from_csv.images))
    columns = ["Metadata_Plate", "Metadata_Well", "ImageNumber", "ObjectNumber", "Location_Center_X"]
    pd.testing.assert_frame_equal(from_db.metadata[columns], from_csv.metadata[columns], check_dtype=False)
    assert_crops_match_their_rows(from_db, screen, BOX)


def test_merged_object_tables_with_prefixes_and_areashape_centres_are_read(tmp_path):
    screen = write_screen(tmp_path / "screen")
    tables = write_spreadsheet(screen, tmp_path / "export")
    write_merged_objects(screen, tables)
    data = load_cellprofiler(str(tables), box=BOX, object_columns=["AreaShape_Area"], workers=1)
    assert_crops_match_their_rows(data, screen, BOX)
    assert (data.metadata["AreaShape_Area"] == 81).all()


def test_channels_and_object_columns_are_chosen_by_name(tmp_path):
    screen = write_screen(tmp_path / "screen")
    tables = write_spreadsheet(screen, tmp_path / "export")
    data = load_cellprofiler(str(tables), channels=["OrigMito"], object_columns=["AreaShape_Area"], box=BOX, workers=1)
    assert data.images.shape[-1] == 1 and data.channel_names == ("OrigMito",)
    row = data.metadata.iloc[4]
    assert (
        int(np.asarray(data.images)[4, BOX // 2, BOX // 2, 0]) == 2000 + 20 * row["ImageNumber"] + row["ObjectNumber"]
    )
    with pytest.raises(
        DataError, match=r"dataset.channels: 'OrigRNA' not in .*Image.csv; it has 'OrigDNA', 'OrigMito'"
    ):
        load_cellprofiler(str(tables), channels=["OrigRNA"], box=BOX, workers=1)
    with pytest.raises(DataError, match=r"dataset.object_columns: 'Intensity_MeanIntensity_DNA' not in .*Nuclei.csv"):
        load_cellprofiler(str(tables), object_columns=["Intensity_MeanIntensity_DNA"], box=BOX, workers=1)


def _edit(tables, name, change):
    table = pd.read_csv(tables / name)
    change(table)
    table.to_csv(tables / name, index=False)


def _duplicate_object(table):
    table.loc[4, "ObjectNumber"] = table.loc[3, "ObjectNumber"]
    table.loc[4, "ImageNumber"] = table.loc[3, "ImageNumber"]


BAD_TABLES = {
    "duplicate object": (
        "Nuclei.csv",
        _duplicate_object,
        r"Nuclei.csv: \(ImageNumber 2, ObjectNumber 1\) appears more than once \(row 6\)",
    ),
    "orphan object": (
        "Nuclei.csv",
        lambda t: t.__setitem__("ImageNumber", t["ImageNumber"].replace(4, 9)),
        r"Nuclei.csv: row 11 belongs to ImageNumber 9, which .*Image.csv does not have \(3 object rows",
    ),
    "NaN centre": (
        "Nuclei.csv",
        lambda t: t.__setitem__("Location_Center_X", t["Location_Center_X"].where(t.index != 2)),
        r"Nuclei.csv: 1 objects have no Location_Center_X .*row 4",
    ),
    "centre not a number": (
        "Nuclei.csv",
        lambda t: t.__setitem__("Location_Center_Y", t["Location_Center_Y"].astype(object).where(t.index != 7, "12,5")),
        r"Nuclei.csv: 1 objects have no Location_Center_Y .*row 9 \('12,5'\)",
    ),
    "no FileName_ column": (
        "Image.csv",
        lambda t: t.drop(columns=[c for c in t.columns if c.startswith("FileName_")], inplace=True),
        r"Image.csv: no FileName_<channel> column.*NamesAndTypes",
    ),
    "duplicate image": (
        "Image.csv",
        lambda t: t.__setitem__("ImageNumber", t["ImageNumber"].replace(2, 1)),
        r"Image.csv: ImageNumber 1 appears more than once \(row 3\)",
    ),
    "no centres": (
        "Nuclei.csv",
        lambda t: t.drop(columns=[c for c in t.columns if "Center" in c], inplace=True),
        r"Nuclei.csv: no object centres \(Location_Center_X/Y or AreaShape_Center_X/Y",
    ),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_bad_tables_are_refused_naming_the_file_the_row_and_the_fix(tmp_path, case):
    name, change, message = BAD_TABLES[case]
    screen = write_screen(tmp_path / "screen")
    tables = write_spreadsheet(screen, tmp_path / "export")
    _edit(tables, name, change)
    with pytest.raises(DataError, match=message):
        load_cellprofiler(str(tables), box=BOX, workers=1)


def test_a_missing_object_table_lists_the_tables_there_are(tmp_path):
    tables = write_spreadsheet(write_screen(tmp_path / "screen"), tmp_path / "export")
    with pytest.raises(DataError, match=r"no Cells.csv; its tables are 'Image.csv', 'Nuclei.csv'.*dataset.objects"):
        load_cellprofiler(str(tables), objects="Cells", box=BOX, workers=1)


def test_centres_outside_the_field_and_boxes_across_its_edge_are_counted_and_left_out(tmp_path, caplog):
    screen = write_screen(tmp_path / "screen", plates=("P1",))
    tables = write_spreadsheet(screen, tmp_path / "export")
    _edit(
        tables,
        "Nuclei.csv",
        lambda t: t.__setitem__("Location_Center_X", t["Location_Center_X"].where(t.index != 0, 70.0)),
    )
    _edit(
        tables,
        "Nuclei.csv",
        lambda t: t.__setitem__("Location_Center_Y", t["Location_Center_Y"].where(t.index != 1, 5.0)),
    )
    with caplog.at_level(logging.INFO, logger="medviz"):
        dropped = load_cellprofiler(str(tables), box=BOX, workers=1)
        padded = load_cellprofiler(str(tables), box=BOX, edge="pad", workers=1)
    assert "1 object centres lie outside its 64x64 px field (e.g. x=70, y=16)" in caplog.text
    assert "1 objects whose box crosses the field's edge dropped" in caplog.text
    assert len(dropped.metadata) == 4 and len(padded.metadata) == 5  # pad keeps the edge object, never the outside one
    edge_row = int(np.flatnonzero((padded.metadata["ImageNumber"] == 1) & (padded.metadata["ObjectNumber"] == 2))[0])
    assert (np.asarray(padded.images)[edge_row, 0] == 100).all()  # padded with the background level, not zeros


def test_channels_of_different_shapes_skip_that_field_naming_it(tmp_path, caplog):
    import tifffile

    screen = write_screen(tmp_path / "screen")
    tables = write_spreadsheet(screen, tmp_path / "export")
    tifffile.imwrite(screen.fields[1].files["OrigMito"], np.full((32, 64), 100, np.uint16))
    with caplog.at_level(logging.WARNING, logger="medviz"):
        data = load_cellprofiler(str(tables), box=BOX, workers=1)
    assert "P1/2 (Image.csv row 3)" in caplog.text and "differ in size" in caplog.text
    assert 2 not in set(data.metadata["ImageNumber"]) and len(data.metadata) == 9
    assert_crops_match_their_rows(data, screen, BOX)


def test_8_and_16_bit_fields_mixed_are_refused_naming_examples(tmp_path):
    screen = write_screen(tmp_path / "screen", plates=("P1",))
    write_screen(tmp_path / "screen", plates=("P2",), dtype=np.uint8, first_image=3)
    full = write_screen(tmp_path / "unused", plates=("P1", "P2"))  # the tables of both plates
    full.images, full.fields[2].files, full.fields[3].files = (
        screen.images,
        *[{c: tmp_path / "screen" / "P2" / f"P2_{w}_s1_{c}.tif" for c in CHANNELS} for w in ("A01", "B02")],
    )
    for f in full.fields[:2]:
        f.files = {c: tmp_path / "screen" / "P1" / p.name for c, p in f.files.items()}
    tables = write_spreadsheet(full, tmp_path / "export")
    with pytest.raises(
        DataError, match=r"uint8.*convert or move the odd ones out|convert or move the odd ones out.*uint8"
    ):
        load_cellprofiler(str(tables), box=BOX, workers=1)


def test_a_field_too_large_to_read_whole_is_skipped_with_the_fix(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr("medviz.data.plates.plan.FIELD_MEMORY_SHARE", 1e-9)
    tables = write_spreadsheet(write_screen(tmp_path / "screen", plates=("P1",)), tmp_path / "export")
    with caplog.at_level(logging.WARNING, logger="medviz"), pytest.raises(DataError, match="none of its 6 objects"):
        load_cellprofiler(str(tables), box=BOX, workers=1)
    assert "a 64x64 px field of 2 file(s) needs" in caplog.text and "split the field into tiles" in caplog.text


@pytest.mark.parametrize("slot_bytes", [256 * 2**20, 1], ids=["blocks-in-shared-slots", "blocks-through-the-pipe"])
def test_fields_are_cut_in_worker_processes_into_the_same_store(tmp_path, monkeypatch, slot_bytes):
    monkeypatch.setattr("medviz.store.workers.BLOCK_SLOT_BYTES", slot_bytes)  # 1: no block fits a slot
    screen = write_screen(tmp_path / "screen", wells=("A01", "B02", "C03"))
    tables = write_spreadsheet(screen, tmp_path / "export")
    parallel = load_cellprofiler(str(tables), box=BOX, workers=2, cache_dir=str(tmp_path / "a"))
    serial = load_cellprofiler(str(tables), box=BOX, workers=1, cache_dir=str(tmp_path / "b"))
    np.testing.assert_array_equal(np.asarray(parallel.images), np.asarray(serial.images))
    assert_crops_match_their_rows(parallel, screen, BOX)
