"""The on-disk store: parallel, incremental and resumable ingest, and what a later run may trust."""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medviz.data.readers.images import read_resized
from medviz.data.sources.folder import folder_items, folder_store, ingest_folder, load_folder, scan_folder
from medviz.errors import DataError
from medviz.store.ingest import ingest
from medviz.store.read import open_store
from tests.helpers.commands import medviz
from tests.helpers.formats import rng_images, write_pngs


def items_of(root: Path):
    files, _ = scan_folder(root)
    return folder_items(root, files)


class CountingReader:
    """A reader that counts its calls and can stop the process (Ctrl-C) at the n-th one."""

    def __init__(self, size: int, stop_at: int | None = None) -> None:
        self.size, self.stop_at, self.calls = size, stop_at, 0

    def __call__(self, path: Path) -> np.ndarray:
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return read_resized(path, self.size)


def same_store(a: Path, b: Path) -> None:
    first, second = open_store(a), open_store(b)
    assert first.keys == second.keys
    np.testing.assert_array_equal(np.asarray(first.images), np.asarray(second.images))


def test_an_interrupted_ingest_resumes_and_ends_equal_to_an_uninterrupted_one(tmp_path):
    root = write_pngs(tmp_path / "imgs", 60)
    items = items_of(root)
    ingest(tmp_path / "whole", items, CountingReader(8), "imgs", workers=1, commit_every=8)
    with pytest.raises(KeyboardInterrupt) as stopped:
        ingest(tmp_path / "store", items, CountingReader(8, stop_at=30), "imgs", workers=1, commit_every=8)
    kept = open_store(tmp_path / "store")
    assert 0 < len(kept.keys) < 30  # what was committed before the stop, and nothing after it
    assert str(stopped.value).startswith(
        f"ingest of imgs stopped by Ctrl-C: the store keeps {len(kept.keys)} images ({len(kept.keys)} of the 60 new"
    )
    # A killed ingest also leaves rows it wrote after its last commit: they must never be read.
    image_file = next((tmp_path / "store").glob("images-*.bin"))
    with open(image_file, "ab") as handle:
        handle.write(b"\x07" * 5000)
    assert len(open_store(tmp_path / "store").images) == len(kept.keys)
    reader = CountingReader(8)
    report = ingest(tmp_path / "store", items, reader, "imgs", workers=1, commit_every=8)
    assert reader.calls == report.added == 60 - len(kept.keys) and report.kept == len(kept.keys)
    same_store(tmp_path / "store", tmp_path / "whole")


def test_adding_removing_and_changing_files_reads_only_those(tmp_path):
    root = write_pngs(tmp_path / "imgs", 40)
    store = tmp_path / "store"
    ingest(store, items_of(root), CountingReader(8), "imgs", workers=1)
    write_pngs(root, 4, start=40)  # 4 new files
    (root / "a" / "img00002.png").unlink()  # 2 removed
    (root / "b" / "img00007.png").unlink()
    changed = root / "a" / "img00010.png"
    Image.fromarray(rng_images(1, 12, seed=999)[0]).save(changed)
    os.utime(changed, ns=(1, 1))  # a different mtime whatever the clock's resolution
    reader = CountingReader(8)
    report = ingest(store, items_of(root), reader, "imgs", workers=1)
    assert (report.added, report.removed, report.kept) == (5, 3, 37) and reader.calls == 5
    stored = open_store(store)
    assert len(stored.keys) == 42 and "a/img00002.png" not in stored.keys
    row = stored.keys.index("a/img00010.png")
    np.testing.assert_array_equal(stored.images[row], read_resized(changed, 8))
    for key in ("a/img00000.png", "b/img00041.png"):  # kept rows and new rows hold their own files
        np.testing.assert_array_equal(stored.images[stored.keys.index(key)], read_resized(root / key, 8))
    again = CountingReader(8)
    assert ingest(store, items_of(root), again, "imgs", workers=1).added == 0 and again.calls == 0


def test_checking_by_names_finds_new_and_removed_files_and_says_what_it_cannot_see(tmp_path):
    root = write_pngs(tmp_path / "imgs", 20)
    cache = str(tmp_path / "cache")
    store, _ = ingest_folder(str(root), size=8, cache_dir=cache, check="names")
    write_pngs(root, 3, start=20)
    (root / "a" / "img00002.png").unlink()
    rewritten = root / "b" / "img00005.png"
    Image.fromarray(rng_images(1, 12, seed=999)[0]).save(rewritten)
    os.utime(rewritten, ns=(1, 1))
    _, by_names = ingest_folder(str(root), size=8, cache_dir=cache, check="names")
    assert (by_names.added, by_names.removed, by_names.kept) == (3, 1, 19)  # the rewrite goes unseen...
    stored = open_store(store)
    new = stored.keys.index("b/img00021.png")  # new files carry their real size and mtime
    assert stored.items[new].size == (root / "b" / "img00021.png").stat().st_size
    _, by_stat = ingest_folder(str(root), size=8, cache_dir=cache)
    assert (by_stat.added, by_stat.removed) == (1, 1)  # ...which the default check reads again
    row = open_store(store).keys.index("b/img00005.png")
    np.testing.assert_array_equal(open_store(store).images[row], read_resized(rewritten, 8))
    with pytest.raises(DataError, match="ingest_check=mtime is not known"):
        ingest_folder(str(root), size=8, cache_dir=cache, check="mtime")


def test_worker_processes_build_the_same_store_and_relay_their_log_lines(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr("medviz.store.workers.PARALLEL_FROM", 64)  # workers for a small folder too
    root = write_pngs(tmp_path / "imgs", 300, size=8)
    Image.fromarray(rng_images(1, 8, seed=5, channels=4)[0]).save(root / "a" / "zz_alpha.png")  # RGBA
    reader = partial(read_resized, size=8)
    with caplog.at_level(logging.INFO, logger="medviz"):
        ingest(tmp_path / "parallel", items_of(root), reader, "imgs", workers=2, commit_every=64)
    said = [r for r in caplog.records if "alpha channel is dropped" in r.getMessage()]
    assert said and all(r.process != os.getpid() for r in said)  # said in a worker process, heard here
    ingest(tmp_path / "serial", items_of(root), reader, "imgs", workers=1)
    same_store(tmp_path / "parallel", tmp_path / "serial")


def test_workers_decoding_into_shared_slots_keep_order_errors_and_odd_kinds(tmp_path, monkeypatch):
    from medviz.store import slots

    monkeypatch.setattr("medviz.store.workers.PARALLEL_FROM", 64)
    monkeypatch.setattr(slots, "SLOT_BYTES", 5 * 8 * 8 * 3)  # 5 images a slot: many slots reused in turn
    root = write_pngs(tmp_path / "imgs", 150, size=8)
    (root / "b" / "img00051.png").write_bytes(b"not a png")
    reader = partial(read_resized, size=8)
    made = []
    original = slots.SlotFile.__init__

    def remember(self, *args):
        original(self, *args)
        made.append(self.path)

    monkeypatch.setattr(slots.SlotFile, "__init__", remember)
    report = ingest(tmp_path / "parallel", items_of(root), reader, "imgs", workers=2, commit_every=16)
    assert made and not any(path.exists() for path in made)  # the slots were used and removed
    assert report.unreadable == 1 and report.added == 149
    ingest(tmp_path / "serial", items_of(root), reader, "imgs", workers=1)
    same_store(tmp_path / "parallel", tmp_path / "serial")
    odd = root / "a" / "img00200.png"  # a 16-bit gray image among 8-bit RGB ones
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(odd)
    write_pngs(root, 100, start=300)
    with pytest.raises(DataError, match=r"1 with 1 channel\(s\) of uint16 \(e.g. a/img00200.png\)"):
        ingest(tmp_path / "parallel", items_of(root), reader, "imgs", workers=2)


def test_slots_leave_a_shared_memory_too_small_for_them(tmp_path, monkeypatch):
    from medviz.store import slots

    shared = tmp_path / "shm"
    shared.mkdir()
    assert slots.slot_folder(10_000, str(shared)) == str(shared)  # room for it twice over
    real = os.statvfs

    class Full:
        f_bavail, f_frsize = 10, 4096  # 40 kB free, as a container's shared memory can be

    monkeypatch.setattr(os, "statvfs", lambda path: Full() if path == str(shared) else real(path))
    assert slots.slot_folder(10_000, str(shared)) == str(shared)
    assert slots.slot_folder(30_000, str(shared)) is None  # the temporary folder instead
    assert slots.slot_folder(10, str(tmp_path / "missing")) is None


def test_an_unreadable_file_is_skipped_until_it_changes(tmp_path, caplog):
    root = write_pngs(tmp_path / "imgs", 6)
    broken = root / "a" / "broken.png"
    broken.write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING, logger="medviz"):
        assert len(load_folder(str(root), size=8)) == 6
        caplog.clear()
        assert len(load_folder(str(root), size=8)) == 6
    assert "1 unreadable images stay skipped until they change (e.g. a/broken.png)" in caplog.text
    Image.fromarray(rng_images(1, 8, seed=1)[0]).save(broken)
    os.utime(broken, ns=(2, 2))
    assert len(load_folder(str(root), size=8)) == 7


def test_a_folder_loads_in_file_order_with_labels_and_a_generation_for_its_statistics(tmp_path):
    root = write_pngs(tmp_path / "imgs", 10)
    data = load_folder(str(root), size=8)
    assert [f.name for f in data.files] == sorted(f.name for f in data.files if f.parent.name == "a") + sorted(
        f.name for f in data.files if f.parent.name == "b"
    )
    assert data.class_names == ("a", "b") and data.labels.tolist() == [0] * 5 + [1] * 5
    first = data.cache_file
    write_pngs(root, 1, start=10)
    assert load_folder(str(root), size=8).cache_file != first  # statistics of the old content are not reused
    store, report = ingest_folder(str(root), size=8)
    assert store == folder_store(root.resolve(), 8, None, None) and report.added == 0


def test_a_store_emptied_of_one_kind_takes_the_next(tmp_path):
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for name in ("a/x.png", "b/y.png"):
        Image.fromarray(rng_images(1, 8, seed=3)[0][..., 0]).save(root / name)  # gray: read as RGB
    assert load_folder(str(root), size=8).channels == 3
    for name in ("a/x.png", "b/y.png"):
        (root / name).unlink()
        Image.fromarray(rng_images(1, 8, seed=4)[0][..., 0].astype(np.uint16) * 200).save(
            (root / name).with_suffix(".tif")
        )
    data = load_folder(str(root), size=8)
    assert data.channels == 1 and data.images.dtype == np.uint16


def test_medviz_ingest_builds_and_updates_the_store_a_run_then_uses(tmp_path):
    root = write_pngs(tmp_path / "imgs", 8)
    first = medviz("ingest", "dataset=folder", f"dataset.path={root}", "dataset.size=8")
    assert first.returncode == 0 and "added 8, removed 0, kept 0" in first.stdout
    (root / "a" / "img00000.png").unlink()
    second = medviz("ingest", "dataset=folder", f"dataset.path={root}", "dataset.size=8")
    assert "added 0, removed 1, kept 7" in second.stdout
    data = load_folder(str(root), size=8)  # what train.py reads: the same store, nothing decoded again
    assert len(data) == 7 and str(data.cache_file).startswith(second.stdout.split()[1].rstrip(":"))


def test_medviz_ingest_says_what_it_cannot_do(tmp_path):
    other = medviz("ingest", "dataset=synthblood")
    assert other.returncode == 1 and "dataset=synthblood is made when a run starts and has no store" in other.stderr
    wrong = medviz("ingest", "dataset=nope")
    assert (
        wrong.returncode == 1
        and "Could not find 'dataset/nope'" in wrong.stderr
        and "e.g. dataset=folder" in wrong.stderr
    )


def test_a_folder_inside_a_hidden_folder_is_read_and_hidden_entries_below_it_are_not(tmp_path):
    root = write_pngs(tmp_path / ".cache" / "imgs", 6)
    write_pngs(root / "a" / ".thumbnails", 2)  # hidden below the dataset: not images of it
    data = load_folder(str(root), size=8)
    assert len(data) == 6 and not any(".thumbnails" in str(f) for f in data.files)
