"""A run keeps the metadata it trained on, row for row with its points, and measures batch mixing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medviz.errors import DataError
from medviz.runs.rebuild import open_finished_run
from medviz.training.pipeline import train
from tests.helpers.config import TINY, compose_config
from tests.helpers.formats import write_pngs

pytestmark = pytest.mark.trains

BATCH_KEYS = {
    "batch_knn_accuracy",
    "batch_knn_chance",
    "batch_ilisi",
    "batch_kbet",
    "batch_asw",
    "graph_connectivity",
    "clisi",
    "scib_total",
}


def test_a_run_with_planted_batches_measures_them_on_the_map_and_the_128d_output(tiny_cfg):
    cfg = tiny_cfg("dataset.batches=2", "schedule.epochs=[1,1,1]")
    metrics = train(cfg)
    run_dir = Path(cfg.run_dir)
    assert set(metrics) >= BATCH_KEYS
    assert {f"features_{key}" for key in BATCH_KEYS} <= set(metrics)
    assert 0 <= metrics["batch_ilisi"] <= 1 and metrics["batch_knn_chance"] == 0.5
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["batch_ilisi"] == metrics["batch_ilisi"]
    table = pd.read_parquet(run_dir / "metadata.parquet")
    assert table["index"].tolist() == list(range(96)) and table["batch"].dtype == "category"
    outputs = np.load(run_dir / "outputs.npz")
    assert outputs["high"].shape == (96, 128) and np.array_equal(outputs["index"], np.arange(96))
    with open(run_dir / "points.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    embedding = np.load(run_dir / "embedding.npz")["embedding"]
    assert len(rows) == 96 and float(rows[5]["x"]) == pytest.approx(float(embedding[5, 0]), rel=1e-5)
    assert {row["batch"] for row in rows} == {"batch1", "batch2"}


def test_the_map_tools_read_the_run_s_copy_and_a_resume_refuses_an_edited_table(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
    root = write_pngs(tmp_path / "cells", 24, classes=("a", "b", "c"))
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    table = pd.DataFrame({"path": paths, "Metadata_Plate": ["=cmd|' /C calc'!A0", "P2"] * 12})
    table.to_csv(tmp_path / "meta.csv", index=False)
    extra = [
        "dataset=folder",
        f"dataset.path={root}",
        "dataset.size=12",
        f"dataset.metadata={tmp_path / 'meta.csv'}",
        "dataset.batch=Metadata_Plate",
        "schedule.epochs=[1,1,1]",
        "batch_size=8",
    ]
    settings = [*(o for o in TINY if not o.startswith("dataset.")), *extra]
    cfg = compose_config(settings, run_dir=tmp_path / "run")
    train(cfg)
    run_dir = Path(cfg.run_dir)
    with open(run_dir / "points.csv", newline="") as f:
        plates = {row["Metadata_Plate"] for row in csv.DictReader(f)}
    assert plates == {"'=cmd|' /C calc'!A0", "P2"}  # a formula is shown as text in a spreadsheet
    table.assign(Metadata_Plate="P9").to_csv(tmp_path / "meta.csv", index=False)  # edited after the run
    _, data, _ = open_finished_run(run_dir)
    keys = [f.relative_to(root).as_posix() for f in data.files]
    assert data.metadata["path"].tolist() == keys
    assert set(data.metadata["Metadata_Plate"].astype(str)) == {"=cmd|' /C calc'!A0", "P2"}  # the run's copy
    with pytest.raises(DataError, match="metadata this run began with differ"):
        train(compose_config([*settings, f"resume={run_dir}"], run_dir=tmp_path / "run"))


def test_figures_colour_by_a_column_and_qc_says_the_map_is_organised_by_batch(tiny_cfg, capsys):
    from PIL import Image

    from medviz.cli import main as medviz_main

    cfg = tiny_cfg("dataset.batches=2", "dataset.batch_strength=1", "schedule.epochs=[1,1,1]")
    train(cfg)
    run_dir = Path(cfg.run_dir)
    width, _ = Image.open(run_dir / "map.png").size
    assert width > 1500  # two panels: by class and by batch
    medviz_main(["figures", "--run", str(run_dir), "--colour-by", "batch"])
    assert Image.open(run_dir / "figures" / "map.png").size[0] > 1500
    capsys.readouterr()
    with pytest.raises(SystemExit):
        medviz_main(["figures", "--run", str(run_dir), "--colour-by", "Plate"])
    assert "--colour-by Plate: no such column; the run's metadata has 'index', 'batch'" in capsys.readouterr().err
    # the map split into its two batches: qc says so, with the numbers
    embedding = np.load(run_dir / "embedding.npz")
    table = pd.read_parquet(run_dir / "metadata.parquet")
    split = embedding["embedding"] + np.where(table["batch"].astype(str).to_numpy() == "batch1", 100.0, 0.0)[:, None]
    np.savez(run_dir / "embedding.npz", **{**{k: embedding[k] for k in embedding.files}, "embedding": split})
    capsys.readouterr()
    medviz_main(["qc", "--run", str(run_dir)])
    said = capsys.readouterr().out
    assert "batches: the map is organised by batch (a technical batch): kNN tells the batch of 100%" in said
    assert "organised by batch" in (run_dir / "qc" / "report.md").read_text()


def test_a_streamed_run_keeps_its_rows_when_images_and_rows_are_added_later(tmp_path, monkeypatch, caplog):
    """Streamed from the store, then the folder and table grow (the next ingest adds the new
    images): the map tools and export still show the run's own images with the rows it trained on."""
    import anndata

    from medviz.cli import main as medviz_main

    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
    root = write_pngs(tmp_path / "cells", 24, classes=("a", "b", "c"))

    def table_of(plate: str) -> pd.DataFrame:
        paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
        plates = [plate, f"{plate}b"] * (len(paths) // 2) + [plate] * (len(paths) % 2)
        return pd.DataFrame({"path": paths, "Metadata_Plate": plates, "Metadata_Site": range(len(paths))})

    table_of("P1").to_csv(tmp_path / "meta.csv", index=False)
    settings = [
        *(o for o in TINY if not o.startswith("dataset.")),
        "dataset=folder",
        f"dataset.path={root}",
        "dataset.size=12",
        f"dataset.metadata={tmp_path / 'meta.csv'}",
        "dataset.batch=Metadata_Plate",
        "speed.ram_budget=1KiB",
        "schedule.epochs=[1,1,1]",
        "batch_size=8",
    ]
    cfg = compose_config(settings, run_dir=tmp_path / "run")
    with caplog.at_level("INFO", logger="medviz"):
        train(cfg)
    assert "of images stream from" in caplog.text
    run_dir = Path(cfg.run_dir)
    trained = pd.read_parquet(run_dir / "metadata.parquet")
    files = [str(f) for f in np.load(run_dir / "embedding.npz")["files"]]
    assert trained["path"].tolist() == [Path(f).relative_to(root).as_posix() for f in files]

    write_pngs(root, 6, start=24, classes=("a", "b", "c"))  # the store ingests only these next time
    table_of("P2").to_csv(tmp_path / "meta.csv", index=False)  # every row edited, six added
    _, data, _ = open_finished_run(run_dir)
    assert [str(f) for f in data.files] == files
    pd.testing.assert_frame_equal(data.metadata, trained)

    write_pngs(root, 3, start=30, classes=("a", "b", "c"))  # images with no row at all
    _, data, _ = open_finished_run(run_dir)
    assert [str(f) for f in data.files] == files
    medviz_main(["export", "--run", str(run_dir)])
    adata = anndata.read_h5ad(run_dir / "map.h5ad")
    assert adata.obs["path"].astype(str).tolist() == trained["path"].tolist()
    assert set(adata.obs["Metadata_Plate"].astype(str)) == {"P1", "P1b"}
