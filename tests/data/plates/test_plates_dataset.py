"""The plates route end to end: a plate added is the only thing cut next time, configs compose,
runs keep their crops by identity, and the built-in screen reads through both of its formats."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medviz.data.sources.plates import load_cellprofiler, load_synthplates
from medviz.runs.rebuild import build_data, open_finished_run
from tests.helpers.config import TINY, compose_config
from tests.helpers.plates import Screen, assert_crops_match_their_rows, write_screen, write_spreadsheet

BOX = 16


def test_a_plate_added_to_the_tables_is_the_only_thing_cut_next_time(tmp_path, caplog):
    first = write_screen(tmp_path / "screen", plates=("P1",))
    tables = write_spreadsheet(first, tmp_path / "export")
    load_cellprofiler(str(tables), box=BOX, workers=1)
    second = write_screen(tmp_path / "screen", plates=("P2",), first_image=3)  # imaged later
    both = Screen(first.images, first.fields + second.fields, first.side)
    with caplog.at_level(logging.INFO, logger="medviz"):
        data = load_cellprofiler(str(write_spreadsheet(both, tables)), box=BOX, workers=1)
    assert "added 6, removed 0, kept 6" in caplog.text
    assert_crops_match_their_rows(data, both, BOX)
    caplog.clear()
    moved = pd.read_csv(tables / "Nuclei.csv")
    moved.loc[0, "Location_Center_X"] += 1  # one object of field 1 moved: that field is cut again
    moved.to_csv(tables / "Nuclei.csv", index=False)
    with caplog.at_level(logging.INFO, logger="medviz"):
        load_cellprofiler(str(tables), box=BOX, workers=1)
    assert "added 3, removed 3, kept 9" in caplog.text


def _plates_config(tmp_path: Path, tables: Path, *extra: str):
    platemap = tmp_path / "platemap.csv"
    pd.DataFrame({"Metadata_Well": ["A01", "B02", "C03"], "Metadata_Treatment": ["DMSO", "cpd_A", "DMSO"]}).to_csv(
        platemap, index=False
    )
    settings = [o for o in TINY if not o.startswith("dataset.")]
    return compose_config(
        [
            *settings,
            "dataset=cellprofiler",
            f"dataset.path={tables}",
            f"dataset.box={BOX}",
            "dataset.size=12",
            f"dataset.platemap={platemap}",
            "dataset.label=Metadata_Treatment",
            "dataset.batch=Metadata_Plate",
            "dataset.ingest_workers=1",
            "batch_size=8",
            *extra,
        ],
        run_dir=tmp_path / "run",
    )


def test_dataset_cellprofiler_composes_with_a_plate_map_labels_and_batches(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
    screen = write_screen(tmp_path / "screen", wells=("A01", "B02", "C03"), objects=4)
    cfg = _plates_config(tmp_path, write_spreadsheet(screen, tmp_path / "export"))
    data = build_data(cfg)
    assert data.images.shape == (24, 12, 12, 2)
    assert data.class_names == ("DMSO", "cpd_A") and np.bincount(data.labels).tolist() == [16, 8]
    assert data.batch_column == "Metadata_Plate"
    meta = data.metadata
    assert meta["path"].tolist()[:2] == ["P1/1/1", "P1/1/2"]
    treatment = dict(zip(meta["Metadata_Well"].astype(str), meta["Metadata_Treatment"].astype(str), strict=True))
    assert treatment == {"A01": "DMSO", "B02": "cpd_A", "C03": "DMSO"}


@pytest.mark.trains
def test_a_run_on_crops_keeps_them_by_identity_when_a_plate_is_added(tmp_path, monkeypatch):
    import anndata

    from medviz.cli import main as medviz_main
    from medviz.training.pipeline import train

    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
    screen = write_screen(tmp_path / "screen", wells=("A01", "B02", "C03"), objects=4)
    tables = write_spreadsheet(screen, tmp_path / "export")
    cfg = _plates_config(tmp_path, tables, "schedule.epochs=[1,1,1]", "aug=fluorescence")
    metrics = train(cfg)
    assert "batch_knn_accuracy" in metrics
    run_dir = Path(cfg.run_dir)
    # A third plate is imaged and added to the tables after the run.
    third = write_screen(tmp_path / "screen", plates=("P3",), wells=("A01", "B02", "C03"), objects=4, first_image=7)
    write_spreadsheet(Screen(screen.images, screen.fields + third.fields, screen.side), tables)
    _, data, _ = open_finished_run(run_dir)
    assert len(data.metadata) == 24 and set(data.metadata["Metadata_Plate"].astype(str)) == {"P1", "P2"}
    medviz_main(["export", "--run", str(run_dir)])
    adata = anndata.read_h5ad(run_dir / "map.h5ad")
    assert adata.obs_names[:2].tolist() == ["P1/1/1", "P1/1/2"]
    assert adata.obs["ObjectNumber"].dtype.kind == "i" and adata.obs["Metadata_Treatment"].dtype == "category"
    medviz_main(["explore", "--run", str(run_dir)])
    page = (run_dir / "explorer.html").read_text()
    assert "Metadata_Well" in page and "ObjectNumber" in page
    # The new plate placed into the finished map, cut as the run's crops were.
    medviz_main(["embed", "--run", str(run_dir), "dataset.plate=P3"])
    placed = pd.read_csv(run_dir / "embedded" / "P3" / "embedded_points.csv")
    assert len(placed) == 12 and set(placed["Metadata_Plate"]) == {"P3"}
    assert placed["path"].tolist()[:2] == ["P3/7/1", "P3/7/2"] and placed[["x", "y"]].notna().all().all()
    with pytest.raises(SystemExit):
        medviz_main(["embed", "--run", str(run_dir), "plate=P3"])


def test_the_built_in_screen_reads_through_its_tables_and_through_its_masks(tmp_path):
    cache = str(tmp_path / "cache")
    via_tables = load_synthplates(plates=2, wells=4, sites=1, via="cellprofiler", cache_dir=cache, workers=1)
    via_masks = load_synthplates(plates=2, wells=4, sites=1, via="masks", cache_dir=cache, workers=1)
    for data in (via_tables, via_masks):
        assert data.images.dtype == np.uint16 and data.images.shape[1:] == (48, 48, 5)
        assert set(data.metadata["Metadata_Treatment"]) == {"DMSO", "cpd_A", "cpd_B", "cpd_C"}
        assert set(data.metadata["Metadata_Plate"].astype(str)) == {"Plate1", "Plate2"}
    # the same cells, found once from the nuclei table and once from the label images
    assert abs(len(via_tables.metadata) - len(via_masks.metadata)) <= 0.1 * len(via_tables.metadata)
    assert (via_masks.metadata["AreaShape_Area"] > via_tables.metadata["AreaShape_Area"].median()).mean() > 0.9
