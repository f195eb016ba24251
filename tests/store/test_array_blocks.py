"""Array sources (MedMNIST, PCam, CIFAR-10, .npz/.npy) in the store: block by block, incremental, resumable."""

from __future__ import annotations

import logging
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from medviz.data.readers.npy_stream import NpyBlocks
from medviz.data.sources.arrays import load_arrays
from medviz.data.sources.medmnist import load_medmnist
from medviz.data.sources.pcam import load_pcam
from medviz.errors import DataError
from medviz.store import array_blocks as array_store
from medviz.store.array_blocks import ArrayPart, store_arrays
from tests.helpers.commands import medviz
from tests.helpers.formats import write_medmnist_npz, write_pcam


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))


class CountingBlocks:
    """Counts what NpyBlocks reads (to check that a current store reads nothing)."""

    def __init__(self, monkeypatch) -> None:
        self.rows = 0
        original = NpyBlocks.rows

        def rows(blocks, array, start, stop):
            self.rows += stop - start
            return original(blocks, array, start, stop)

        monkeypatch.setattr(NpyBlocks, "rows", rows)


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_medmnist_lands_in_the_store_block_by_block_and_is_read_once(tmp_path, monkeypatch, save):
    path = write_medmnist_npz(tmp_path, "bloodmnist", n_classes=8)
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    save(path, **arrays)
    monkeypatch.setattr(array_store, "BLOCK_BYTES", 5 * 28 * 28 * 3)  # 5 images a block: blocks cross no split
    counted = CountingBlocks(monkeypatch)
    data = load_medmnist("bloodmnist", root=str(tmp_path))
    expected = np.concatenate([arrays[f"{s}_images"] for s in ("train", "val", "test")])
    assert isinstance(data.images, np.memmap) and np.array_equal(data.images, expected)
    assert counted.rows == 22 and list(data.split) == ["train"] * 12 + ["val"] * 4 + ["test"] * 6
    again = load_medmnist("bloodmnist", root=str(tmp_path))
    assert counted.rows == 22 and np.array_equal(again.images, expected)  # the store was current: nothing read


def test_a_changed_npz_is_read_again(tmp_path):
    path = write_medmnist_npz(tmp_path, "bloodmnist", n_classes=8)
    load_medmnist("bloodmnist", root=str(tmp_path))
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["val_images"] = 255 - arrays["val_images"]
    np.savez(path, **arrays)
    data = load_medmnist("bloodmnist", root=str(tmp_path))
    assert np.array_equal(data.images[12:16], arrays["val_images"])


def test_an_interrupted_array_ingest_resumes_to_the_same_store(tmp_path):
    source = np.random.default_rng(0).integers(0, 65535, (40, 6, 6, 2), dtype=np.uint16)
    labels = np.arange(40)
    parts = [ArrayPart("a", 25, source[0].nbytes, (1, 1)), ArrayPart("b", 15, source[0].nbytes, (2, 2))]
    reads = []

    def read_block(payload, fail_at=None):
        part, start, stop = payload
        if len(reads) == fail_at:
            raise KeyboardInterrupt
        reads.append(payload)
        offset = 25 if part else 0
        return source[offset + start : offset + stop]

    block_bytes = 4 * source[0].nbytes  # 7 + 4 blocks, the index committed after each
    with pytest.raises(KeyboardInterrupt):
        store_arrays(tmp_path / "store", parts, lambda p: read_block(p, fail_at=6), "arrays", block_bytes)
    assert len(reads) == 6
    images, source_rows, _ = store_arrays(tmp_path / "store", parts, read_block, "arrays", block_bytes)
    assert len(reads) == 11  # only the 5 blocks not committed were read
    assert np.array_equal(images, source[source_rows]) and sorted(labels[source_rows]) == list(range(40))
    whole, rows, _ = store_arrays(tmp_path / "other", parts, read_block, "arrays", block_bytes)
    assert np.array_equal(images, whole) and np.array_equal(source_rows, rows)


def test_npy_integers_are_converted_once_for_the_whole_array_not_per_block(tmp_path, monkeypatch, caplog):
    images = np.zeros((30, 8, 8, 2), np.int32)
    images[:20] = 200  # the first blocks alone would fit 8 bits...
    images[25] = 1000  # ...a later one does not: every block must become uint16
    np.save(tmp_path / "cells.npy", images)
    monkeypatch.setattr(array_store, "BLOCK_BYTES", 5 * images[0].nbytes)
    with caplog.at_level(logging.WARNING, logger="medviz"):
        data = load_arrays(str(tmp_path / "cells.npy"))
    assert data.images.dtype == np.uint16 and np.array_equal(data.images, images.astype(np.uint16))
    assert "int32 images (here 0 to 1000) are stored as uint16" in caplog.text


def test_a_compressed_npz_larger_than_a_block_is_never_held_whole(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 4096, (2048, 64, 64, 2), dtype=np.uint16)  # 32 MiB
    labels = np.array(["a", "b"])[np.arange(2048) % 2]
    np.savez_compressed(tmp_path / "cells.npz", images=images.transpose(0, 3, 1, 2), labels=labels)
    monkeypatch.setattr(array_store, "BLOCK_BYTES", 2**20)  # 1 MiB blocks
    tracemalloc.start()
    try:
        data = load_arrays(str(tmp_path / "cells.npz"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.array_equal(data.images, images) and data.class_names == ("a", "b")
    assert list(data.labels[:4]) == [0, 1, 0, 1]
    # A few blocks' copies and the store's 4 MiB write buffer, far from the whole array.
    assert peak < 12 * 2**20, f"peak {peak / 2**20:.1f} MiB while storing a 32 MiB array in 1 MiB blocks"


def test_a_truncated_npz_names_the_file(tmp_path):
    np.savez_compressed(tmp_path / "cells.npz", images=np.ones((64, 16, 16, 3), np.uint8))
    raw = (tmp_path / "cells.npz").read_bytes()
    (tmp_path / "cells.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="cells.npz"):
        load_arrays(str(tmp_path / "cells.npz"))


def test_pcam_rereads_only_the_file_that_changed(tmp_path, caplog):
    root = write_pcam(tmp_path / "pcam")
    first = load_pcam(str(root), chunk=2)
    test_x = root / "camelyonpatch_level_2_split_test_x.h5"
    import h5py

    with h5py.File(test_x, "r+") as handle:
        handle["x"][0] = 7
    with caplog.at_level(logging.INFO, logger="medviz"):
        second = load_pcam(str(root), chunk=2)
    assert "added 3, removed 3, kept 9" in caplog.text  # the test split's 3 patches, not the other 9
    assert np.array_equal(second.images[:9], first.images[:9]) and (second.images[9] == 7).all()
    assert list(second.split) == ["train"] * 6 + ["valid"] * 3 + ["test"] * 3


def test_medviz_ingest_builds_an_array_store_and_says_what_it_kept(tmp_path):
    np.savez(tmp_path / "cells.npz", images=np.ones((10, 8, 8, 3), np.uint8))
    first = medviz("ingest", "dataset=arrays", f"dataset.path={tmp_path / 'cells.npz'}")
    assert first.returncode == 0 and "added 10, removed 0, kept 0" in first.stdout
    again = medviz("ingest", "dataset=arrays", f"dataset.path={tmp_path / 'cells.npz'}")
    assert "added 0, removed 0, kept 10" in again.stdout


def test_stored_statistics_are_kept_per_generation(tmp_path):
    path = write_medmnist_npz(tmp_path, "bloodmnist", n_classes=8)
    data = load_medmnist("bloodmnist", root=str(tmp_path))
    border = data.border_colour()
    kept = list(Path(data.cache_file).parent.glob(f"{Path(data.cache_file).name}.border-*.json"))
    assert len(kept) == 1
    assert np.array_equal(load_medmnist("bloodmnist", root=str(tmp_path)).border_colour(), border)
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["train_images"] = np.zeros_like(arrays["train_images"])
    np.savez(path, **arrays)
    changed = load_medmnist("bloodmnist", root=str(tmp_path))
    assert changed.cache_file != data.cache_file and not np.array_equal(changed.border_colour(), border)
