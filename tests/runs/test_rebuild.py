"""Rebuilding a finished run's images: matched to its points by identity, never by position."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from medviz.data.sources.folder import load_folder
from medviz.errors import ConfigError
from medviz.runs.rebuild import open_finished_run
from medviz.training.pipeline import train
from tests.helpers.commands import medviz
from tests.helpers.config import TINY, compose_config
from tests.helpers.formats import write_image_folder

pytestmark = pytest.mark.trains


@pytest.fixture
def folder_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
    root = write_image_folder(tmp_path / "cells", per_class=20)
    overrides = [o for o in TINY if not o.startswith("dataset.source.n_images")]
    overrides += ["dataset=folder", f"dataset.path={root}", "dataset.size=28"]
    overrides += ["schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]"]
    run = tmp_path / "run"
    train(compose_config(overrides, run_dir=run))
    return root, run


def test_a_resaved_image_moves_in_the_store_but_keeps_its_point(folder_run):
    root, run = folder_run
    saved, data, _ = open_finished_run(run)
    assert [str(f) for f in data.files] == list(saved["files"])
    first = sorted(root.rglob("*.png"))[0]
    pixels = np.asarray(Image.open(first).convert("RGB"))
    Image.fromarray(255 - pixels).save(first)  # re-saved: read again, appended at the end of the store
    os.utime(first, ns=(5, 5))
    saved, data, _ = open_finished_run(run)
    store_order = [str(f) for f in load_folder(str(root), size=28).files]
    assert store_order != list(saved["files"])  # the store's row order follows its history ...
    assert [str(f) for f in data.files] == list(saved["files"])  # ... every point still names its own image
    assert data.labels.tolist() == saved["labels"].tolist()
    done = medviz("explore", "--run", str(run))
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_renamed_image_is_said_not_silently_swapped(folder_run):
    root, run = folder_run
    first = sorted(root.rglob("*.png"))[0]
    first.rename(first.with_name("renamed.png"))
    gone = rf"1 of the \d+ images of the map .* no longer in the dataset .*{first.name}"
    with pytest.raises(ConfigError, match=gone):
        open_finished_run(run)
    done = medviz("figures", "--run", str(run))
    assert done.returncode == 1 and "renamed or removed since the run" in done.stderr
