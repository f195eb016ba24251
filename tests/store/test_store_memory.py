"""Datasets larger than memory: streaming from the store, reading rows by offset, statistics in blocks."""

from __future__ import annotations

import numpy as np
import pytest

from medviz.data.image_arrays import ImageArrays
from medviz.data.prepare.memory import physical_memory, ram_budget
from medviz.errors import ConfigError
from medviz.runs.rebuild import build_data
from medviz.store.gather import blocks, gather
from medviz.training.pipeline import train
from tests.helpers.config import compose_config
from tests.helpers.formats import write_pngs

TINY_TRAINING = [
    "dataset=folder",
    "dataset.size=16",
    "backbone=tinycnn",
    "backbone.width=8",
    "batch_size=16",
    "schedule.epochs=[1,1,1]",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
]


def test_a_store_larger_than_the_budget_streams_and_gives_the_same_map_as_in_memory(tmp_path):
    root = write_pngs(tmp_path / "imgs", 64, size=16)
    maps = {}
    for budget in ("1GiB", "1KiB"):
        cfg = compose_config(
            [*TINY_TRAINING, f"dataset.path={root}", f"speed.ram_budget={budget}", "num_workers=auto"],
            run_dir=tmp_path / budget,
        )
        data = build_data(cfg)
        assert isinstance(data.images, np.memmap) == (budget == "1KiB")
        train(cfg)
        maps[budget] = np.load(tmp_path / budget / "embedding.npz")["embedding"]
    np.testing.assert_array_equal(maps["1GiB"], maps["1KiB"])


def test_ram_budget_sizes_and_the_message_for_a_wrong_one():
    assert ram_budget("8GiB") == 8 * 2**30 and ram_budget("512MiB") == 2**29 and ram_budget(1000) == 1000
    assert 0 < ram_budget("auto") < physical_memory()
    with pytest.raises(ConfigError, match=r"speed.ram_budget=lots is not a size: use auto, or e.g."):
        ram_budget("lots")


def _rss_file_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssFile:")) / 1024


def test_rows_of_a_memory_map_are_read_by_offset_equal_and_without_mapping_its_pages(tmp_path):
    path = tmp_path / "rows.npy"
    stored = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(4096, 32, 32, 8))  # 64 MiB
    stored[:] = np.arange(stored.size, dtype=np.uint64).reshape(stored.shape) % 65521
    stored.flush()
    del stored
    images = np.load(path, mmap_mode="r")
    before = _rss_file_mib()
    for block_rows in np.array_split(np.arange(4096), 16):
        gather(images, block_rows)
    for _ in blocks(images, 512):
        pass
    assert _rss_file_mib() - before < 16  # read by offset: the file's pages are not ours
    before = _rss_file_mib()
    np.asarray(images[::1]).sum()  # through the map: every page becomes resident in this process
    assert _rss_file_mib() - before > 48
    indices = np.array([7, 3, 4, 5, 4095, 0, 3, 100])  # unsorted, a run, repeats, both ends
    np.testing.assert_array_equal(gather(images, indices), np.asarray(images[indices]))
    np.testing.assert_array_equal(np.concatenate(list(blocks(images, 1000))), np.asarray(images))
    with pytest.raises(IndexError):
        gather(images, np.array([4096]))


def test_channel_statistics_of_a_large_sample_come_in_blocks_with_the_same_values(tmp_path, monkeypatch):
    import medviz.data.image_arrays as arrays

    rng = np.random.default_rng(0)
    path = tmp_path / "counts.npy"
    np.save(path, rng.integers(0, 4000, (300, 16, 16, 2)).astype(np.uint16))
    data = ImageArrays(np.load(path, mmap_mode="r"), np.zeros(300, np.int64), ("a",), "counts")
    whole = data.channel_stats()
    monkeypatch.setattr(arrays, "STATS_IN_ONE_PASS", 1000)  # too large for one pass ...
    monkeypatch.setattr(arrays, "STATS_BLOCK", 16 * 16 * 2 * 8 * 7)  # ... so in blocks of 7 images
    np.testing.assert_allclose(data.channel_stats(), whole, rtol=1e-6)
