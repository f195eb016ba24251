"""Per-image metadata tables: joined by identity, typed, with labels and batches from columns, and refused clearly."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from medviz.data.prepare.metadata import MetadataOptions, attach_metadata
from medviz.data.readers.tables import read_table
from medviz.data.sources.folder import load_folder
from medviz.data.synthetic.synthblood import load_synthblood
from medviz.errors import ConfigError, DataError
from medviz.runs.rebuild import build_data
from tests.helpers.config import TINY, compose_config
from tests.helpers.formats import write_pngs


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))


def folder_with_table(tmp_path, count: int = 12):
    """A folder of class sub-folders and a CellProfiler-style table keyed by relative path."""
    root = write_pngs(tmp_path / "cells", count)
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    table = pd.DataFrame(
        {
            "path": paths,
            "Metadata_Plate": [f"P{i % 3}" for i in range(len(paths))],
            "Metadata_Well": [f"A{i % 4:02d}" for i in range(len(paths))],
            "Metadata_Dose": [0.5 * i for i in range(len(paths))],
            "treatment": ["DMSO" if i % 2 else "drug" for i in range(len(paths))],
        }
    )
    return root, table


def test_every_column_travels_with_its_type_in_the_images_order(tmp_path):
    root, table = folder_with_table(tmp_path)
    shuffled = table.sample(frac=1, random_state=0)  # the table's order is not the images'
    shuffled.to_csv(tmp_path / "meta.csv", index=False)
    data = attach_metadata(load_folder(str(root)), MetadataOptions(table=str(tmp_path / "meta.csv")), root)
    keys = [f.relative_to(root).as_posix() for f in data.files]
    assert data.metadata["path"].tolist() == keys  # matched by path, not by row position
    expected = table.set_index("path").loc[keys]
    assert data.metadata["Metadata_Dose"].tolist() == expected["Metadata_Dose"].tolist()
    assert pd.api.types.is_float_dtype(data.metadata["Metadata_Dose"])  # numbers stay numbers
    assert data.metadata["Metadata_Plate"].dtype == "category"  # text becomes a category
    assert data.metadata["Metadata_Well"].tolist() == expected["Metadata_Well"].tolist()  # "A01" keeps its zero


@pytest.mark.parametrize("suffix", [".csv.gz", ".parquet", ".tsv"])
def test_gzipped_csv_tsv_and_parquet_read_alike(tmp_path, suffix):
    _, table = folder_with_table(tmp_path)
    path = tmp_path / f"meta{suffix}"
    if suffix == ".parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    read = read_table(path)
    assert read["path"].tolist() == table["path"].tolist()
    assert read["Metadata_Dose"].tolist() == table["Metadata_Dose"].tolist()


def test_identifiers_with_leading_zeros_stay_text(tmp_path):
    (tmp_path / "t.csv").write_text("path,Metadata_Plate,n\na.png,0001,1\nb.png,0002,2\n")
    table = read_table(tmp_path / "t.csv")
    assert table["Metadata_Plate"].tolist() == ["0001", "0002"]
    assert table["n"].tolist() == [1, 2]


def test_images_without_a_row_are_refused_naming_them(tmp_path):
    root, table = folder_with_table(tmp_path)
    table.iloc[3:].to_csv(tmp_path / "meta.csv", index=False)
    with pytest.raises(DataError, match=r"3 of the 12 images have no row, e\.g\. '"):
        attach_metadata(load_folder(str(root)), MetadataOptions(table=str(tmp_path / "meta.csv")), root)


def test_rows_without_an_image_are_counted(tmp_path, caplog):
    root, table = folder_with_table(tmp_path)
    extra = pd.DataFrame({"path": ["gone/x.png", "gone/y.png"], "Metadata_Plate": ["P9", "P9"]})
    pd.concat([table, extra]).to_csv(tmp_path / "meta.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="medviz"):
        attach_metadata(load_folder(str(root)), MetadataOptions(table=str(tmp_path / "meta.csv")), root)
    assert "2 of its 14 rows name no image" in caplog.text


def test_duplicate_keys_and_a_missing_key_column_are_refused(tmp_path):
    root, table = folder_with_table(tmp_path)
    pd.concat([table, table.iloc[:1]]).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(DataError, match="1 keys of column path appear more than once"):
        attach_metadata(load_folder(str(root)), MetadataOptions(table=str(tmp_path / "twice.csv")), root)
    table.rename(columns={"path": "file"}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(DataError, match=r"no key column path; its columns are 'file'.*dataset.metadata_key"):
        attach_metadata(load_folder(str(root)), MetadataOptions(table=str(tmp_path / "other.csv")), root)
    data = attach_metadata(load_folder(str(root)), MetadataOptions(table=str(tmp_path / "other.csv"), key="file"), root)
    assert len(data.metadata) == 12


def test_labels_and_batches_from_columns(tmp_path):
    root, table = folder_with_table(tmp_path)
    table.to_csv(tmp_path / "meta.csv", index=False)
    options = MetadataOptions(table=str(tmp_path / "meta.csv"), label="treatment", batch="Metadata_Plate")
    data = attach_metadata(load_folder(str(root)), options, root)
    assert data.class_names == ("DMSO", "drug")  # the column's values, not the class folders
    assert [data.class_names[i] for i in data.labels] == data.metadata["treatment"].astype(str).tolist()
    codes, names = data.batches()
    assert names == ("P0", "P1", "P2")
    assert [names[c] for c in codes] == data.metadata["Metadata_Plate"].astype(str).tolist()
    with pytest.raises(ConfigError, match=r"dataset.batch=Plate: no such column; the metadata has 'path', "):
        attach_metadata(load_folder(str(root)), MetadataOptions(table=str(tmp_path / "meta.csv"), batch="Plate"), root)


def test_missing_label_values_are_refused_or_dropped_and_counted(tmp_path, caplog):
    root, table = folder_with_table(tmp_path)
    table.loc[[2, 5], "treatment"] = None
    table.to_csv(tmp_path / "meta.csv", index=False)
    options = MetadataOptions(table=str(tmp_path / "meta.csv"), label="treatment")
    with pytest.raises(DataError, match=r"2 of 12 images have no treatment \(e\.g\. .*drop_missing=true"):
        attach_metadata(load_folder(str(root)), options, root)
    with caplog.at_level(logging.WARNING, logger="medviz"):
        data = attach_metadata(
            load_folder(str(root)),
            MetadataOptions(str(tmp_path / "meta.csv"), label="treatment", drop_missing=True),
            root,
        )
    assert len(data) == len(data.metadata) == len(data.files) == 10
    assert "2 of 12 images have no treatment" in caplog.text
    assert data.metadata["treatment"].notna().all()


def test_a_plate_map_joins_many_to_one_on_the_shared_columns(tmp_path):
    root, table = folder_with_table(tmp_path)
    table.drop(columns=["treatment"]).to_csv(tmp_path / "meta.csv", index=False)
    platemap = pd.DataFrame(
        {
            "Metadata_Plate": [f"P{p}" for p in range(3) for _ in range(4)],
            "Metadata_Well": [f"A{w:02d}" for _ in range(3) for w in range(4)],
            "Metadata_compound": [f"cpd{p}{w}" for p in range(3) for w in range(4)],
        }
    )
    platemap.to_csv(tmp_path / "platemap.csv", index=False)
    options = MetadataOptions(table=str(tmp_path / "meta.csv"), platemap=str(tmp_path / "platemap.csv"))
    data = attach_metadata(load_folder(str(root)), options, root)
    for _, row in data.metadata.iterrows():
        plate, well = row["Metadata_Plate"], row["Metadata_Well"]
        assert row["Metadata_compound"] == f"cpd{plate[1:]}{int(well[1:])}"
    pd.concat([platemap, platemap.iloc[:1]]).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(DataError, match=r"1 rows repeat a Metadata_Plate/Metadata_Well \(Metadata_Plate=P0"):
        attach_metadata(
            load_folder(str(root)),
            MetadataOptions(str(tmp_path / "meta.csv"), platemap=str(tmp_path / "twice.csv")),
            root,
        )


def test_arrays_and_built_in_sets_join_on_the_row_number(tmp_path):
    data = load_synthblood(n_images=20, seed=0)
    pd.DataFrame({"index": np.arange(20)[::-1], "donor": [f"d{i % 2}" for i in range(20)][::-1]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    joined = attach_metadata(data, MetadataOptions(table=str(tmp_path / "m.csv"), batch="donor"))
    assert joined.metadata["index"].tolist() == list(range(20))
    assert joined.metadata["donor"].astype(str).tolist() == [f"d{i % 2}" for i in range(20)]
    (tmp_path / "bad.csv").write_text("index,donor\nx,d0\n")
    with pytest.raises(DataError, match="holds 'x', not a row number"):
        attach_metadata(data, MetadataOptions(table=str(tmp_path / "bad.csv")))


def test_hostile_values_are_kept_as_text(tmp_path):
    root, table = folder_with_table(tmp_path, count=4)
    table["Metadata_Plate"] = ["<img src=x onerror=alert(1)>", '=HYPERLINK("x")', "a$\\frac$", "plain"]
    table.to_csv(tmp_path / "meta.csv", index=False)
    data = attach_metadata(
        load_folder(str(root)), MetadataOptions(str(tmp_path / "meta.csv"), batch="Metadata_Plate"), root
    )
    assert set(data.batches()[1]) == set(table["Metadata_Plate"])


def test_the_config_keys_reach_the_data_and_a_subset_keeps_rows_and_metadata_together(tmp_path):
    root, table = folder_with_table(tmp_path, count=20)
    table.to_csv(tmp_path / "meta.csv", index=False)
    cfg = compose_config(
        [
            *(o for o in TINY if not o.startswith("dataset.")),
            "dataset=folder",
            f"dataset.path={root}",
            f"dataset.metadata={tmp_path / 'meta.csv'}",
            "dataset.batch=Metadata_Plate",
            "dataset.n_images=10",
        ]
    )
    data = build_data(cfg)
    assert len(data) == 10
    keys = [f.relative_to(root).as_posix() for f in data.files]
    assert data.metadata["path"].tolist() == keys
    assert data.batch_column == "Metadata_Plate"
    # the images grow and the table is edited: a finished run's own table gives the same subset back
    kept = data.metadata
    write_pngs(root, 10, start=20)
    table.assign(treatment="edited").to_csv(tmp_path / "meta.csv", index=False)
    again = build_data(cfg, kept_metadata=kept)
    assert [f.relative_to(root).as_posix() for f in again.files] == keys
    assert again.metadata["treatment"].tolist() == kept["treatment"].tolist()


def test_a_kept_table_of_other_data_is_refused(tmp_path):
    root, _ = folder_with_table(tmp_path)
    data = load_folder(str(root), size=12)
    other = pd.DataFrame({"index": range(12), "batch": ["x"] * 12})
    with pytest.raises(DataError, match="has no column path"):
        attach_metadata(data, MetadataOptions(kept=other), root=root)
