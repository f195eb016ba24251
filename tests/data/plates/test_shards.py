"""Plates cut by independent jobs into shards of their own, at once, then read as one dataset."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from medviz.data.sources.plates import load_cellprofiler
from medviz.errors import DataError
from medviz.training.pipeline import train
from tests.helpers.config import REPO, TINY, compose_config
from tests.helpers.plates import assert_crops_match_their_rows, write_screen, write_spreadsheet

BOX = 16


def _ingest(tables, cache, *overrides: str, multirun: bool = False) -> subprocess.Popen:
    cmd = [
        sys.executable,
        str(REPO / "ingest.py"),
        *(["-m"] if multirun else []),
        "dataset=cellprofiler",
        f"dataset.path={tables}",
        f"dataset.box={BOX}",
        "dataset.ingest_workers=1",
        *overrides,
    ]
    env = {**os.environ, "MEDVIZ_CACHE": str(cache)}
    return subprocess.Popen(cmd, cwd=cache.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.trains  # processes of their own
def test_two_plates_cut_at_once_by_two_processes_then_one_training_over_both(tmp_path, caplog):
    screen = write_screen(tmp_path / "screen", wells=("A01", "B02", "C03"))
    tables = write_spreadsheet(screen, tmp_path / "export")
    cache = tmp_path / "cache"
    jobs = [_ingest(tables, cache, f"dataset.plate={plate}") for plate in ("P1", "P2")]
    for job in jobs:
        out, err = job.communicate(timeout=300)
        assert job.returncode == 0, err[-3000:]
    shards = sorted(p.name.rsplit("-plate-", 1)[1] for p in (cache / "stores").glob("*-plate-*"))
    assert shards == ["P1", "P2"]
    # One training over both plates: the dataset's store is assembled from the two shards.
    cfg = compose_config(
        [
            *(o for o in TINY if not o.startswith("dataset.")),
            "dataset=cellprofiler",
            f"dataset.path={tables}",
            f"dataset.box={BOX}",
            "dataset.ingest_workers=2",  # the shards' blocks are copied by the workers
            "dataset.batch=Metadata_Plate",
            "aug=fluorescence",
            "batch_size=8",
            "schedule.epochs=[1,1,1]",
        ],
        run_dir=tmp_path / "run",
    )
    with caplog.at_level(logging.INFO, logger="medviz"):
        metrics = train(cfg)
    assert "up to 18 of them copied from plate shards, not cut again" in caplog.text
    assert metrics["n_images"] == 18 and metrics["batch_knn_chance"] == 0.5
    data = load_cellprofiler(str(tables), box=BOX, cache_dir=str(cache), workers=1)
    assert_crops_match_their_rows(data, screen, BOX)
    direct = load_cellprofiler(str(tables), box=BOX, cache_dir=str(tmp_path / "other"), workers=1)
    np.testing.assert_array_equal(np.asarray(data.images), np.asarray(direct.images))


def test_a_multirun_over_plates_uses_the_sweep_launchers(tmp_path):
    screen = write_screen(tmp_path / "screen")
    tables = write_spreadsheet(screen, tmp_path / "export")
    cache = tmp_path / "cache"
    job = _ingest(
        tables,
        cache,
        "dataset.plate=P1,P2",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        multirun=True,
    )
    _, err = job.communicate(timeout=600)
    assert job.returncode == 0, err[-3000:]
    assert (
        len(list((cache / "stores").glob("*-plate-P1"))) == 1 and len(list((cache / "stores").glob("*-plate-P2"))) == 1
    )
    assert "completed" in (tmp_path / "sweep" / "summary.md").read_text()


def test_one_plate_or_a_group_is_a_dataset_and_an_unknown_plate_lists_them(tmp_path):
    screen = write_screen(tmp_path / "screen", plates=("P1", "P2", "P3"))
    tables = write_spreadsheet(screen, tmp_path / "export")
    one = load_cellprofiler(str(tables), box=BOX, plate="P2", workers=1)
    assert set(one.metadata["Metadata_Plate"].astype(str)) == {"P2"} and len(one.metadata) == 6
    group = load_cellprofiler(str(tables), box=BOX, plate=["P1", "P3"], workers=1)
    assert set(group.metadata["Metadata_Plate"].astype(str)) == {"P1", "P3"} and len(group.metadata) == 12
    assert_crops_match_their_rows(group, screen, BOX)
    with pytest.raises(DataError, match=r"dataset.plate: 'P9' not in .*Image.csv; its plates are 'P1', 'P2', 'P3'"):
        load_cellprofiler(str(tables), box=BOX, plate="P9", workers=1)
