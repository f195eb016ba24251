"""The on-disk store: parallel, incremental and resumable ingest, and what a later run may trust."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import subprocess
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


def test_ctrl_c_in_medviz_ingest_says_what_was_kept_and_how_to_go_on(tmp_path, monkeypatch):
    import medviz.data.sources.folder as folder_source

    root = write_pngs(tmp_path / "imgs", 40)
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
    calls = []

    def stops_at_the_25th(path, size):
        calls.append(path)
        if len(calls) == 25:
            raise KeyboardInterrupt  # as Ctrl-C would, in the middle of reading
        return read_resized(path, size)

    monkeypatch.setattr(folder_source, "read_resized", stops_at_the_25th)
    done = medviz("ingest", "dataset=folder", f"dataset.path={root}", "dataset.ingest_workers=1")
    assert done.returncode == 130 and "Traceback" not in done.stderr
    assert f"medviz: error: ingest of {root} stopped by Ctrl-C: the store keeps " in done.stderr
    assert "run the same command again to read the rest" in done.stderr


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


def test_an_image_over_the_pixel_limit_is_skipped_naming_the_file_and_the_setting(tmp_path, caplog):
    """A 15,000 x 15,000 PNG (over PIL's decompression-bomb limit) once stopped the whole ingest."""
    root = write_pngs(tmp_path / "imgs", 6)
    Image.new("1", (15000, 15000)).save(root / "a" / "mosaic.png")  # 27 kB on disk, 225 Mpx decoded
    with caplog.at_level(logging.WARNING, logger="medviz"):
        assert len(load_folder(str(root), size=8)) == 6
    assert "mosaic.png: 15000 x 15000 pixels is more than the 178,956,970 medviz reads" in caplog.text
    assert "MEDVIZ_MAX_IMAGE_PIXELS=225000000" in caplog.text


def test_the_pixel_limit_is_a_setting_and_holds_for_tiff_too(tmp_path, caplog, monkeypatch):
    import tifffile

    root = write_pngs(tmp_path / "imgs", 4)
    tifffile.imwrite(root / "b" / "wide.tif", np.zeros((40, 50, 3), np.uint8))
    monkeypatch.setenv("MEDVIZ_MAX_IMAGE_PIXELS", "1000")  # 8 x 8 PNGs pass, 40 x 50 does not
    with caplog.at_level(logging.WARNING, logger="medviz"):
        assert len(load_folder(str(root), size=8, workers=1)) == 4
    assert "wide.tif: 50 x 40 pixels is more than the 1,000" in caplog.text
    monkeypatch.setenv("MEDVIZ_MAX_IMAGE_PIXELS", "2000")
    os.utime(root / "b" / "wide.tif", ns=(3, 3))  # changed: read again, now within the limit
    assert len(load_folder(str(root), size=8, workers=1)) == 5


def test_symbolic_link_loops_are_skipped_with_a_warning_and_the_rest_is_read(tmp_path, caplog):
    root = write_pngs(tmp_path / "imgs", 6)
    (root / "a" / "loop1").symlink_to("loop2")  # a circle of links: the OS refuses to follow it
    (root / "a" / "loop2").symlink_to("loop1")
    (root / "b" / "up").symlink_to("..")  # a link to an ancestor: each real folder is read once
    with caplog.at_level(logging.WARNING, logger="medviz"):
        data = load_folder(str(root), size=8, workers=1)
    assert len(data) == 6
    assert f"skipped {root / 'a' / 'loop1'}: Too many levels of symbolic links" in caplog.text


def test_statistics_never_outlive_their_content_when_the_index_is_deleted(tmp_path):
    """A deleted index.sqlite once restarted the generations, and the next content read the earlier
    content's border colour (0.039 for images of mean 0.94)."""
    root = tmp_path / "imgs"
    for c in "ab":
        (root / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8, 3), 10, np.uint8)).save(root / c / f"{i}.png")
    dark = load_folder(str(root), size=8, cache_dir=str(tmp_path / "cache"))
    assert dark.border_colour() == pytest.approx([10 / 255] * 3, abs=1e-6)  # kept beside the store
    store = next((tmp_path / "cache").rglob("index.sqlite")).parent
    assert list(store.glob("generation-*.json"))
    (store / "index.sqlite").unlink()
    for path in root.rglob("*.png"):
        Image.fromarray(np.full((8, 8, 3), 240, np.uint8)).save(path)
    bright = load_folder(str(root), size=8, cache_dir=str(tmp_path / "cache"))
    assert bright.border_colour() == pytest.approx([240 / 255] * 3, abs=1e-6)
    assert len(list(store.glob("images-*.bin"))) == 1  # no orphaned row file either


def test_a_row_file_cut_short_is_refused_as_damage_and_never_padded(tmp_path):
    """A row file shorter than its index, then one new image and an ingest, was padded with zeros
    that passed for committed images."""
    root = write_pngs(tmp_path / "imgs", 6)
    cache = str(tmp_path / "cache")
    assert len(load_folder(str(root), size=8, cache_dir=cache)) == 6
    rows_file = next((tmp_path / "cache").rglob("images-*.bin"))
    rows_file.write_bytes(rows_file.read_bytes()[: 3 * 8 * 8 * 3])  # three of the six rows survive
    Image.fromarray(rng_images(1, 8, seed=99)[0]).save(root / "a" / "new.png")
    for _ in range(2):  # refused on every open, and nothing was written in between
        with pytest.raises(DataError, match=r"is damaged: images-\d+\.bin holds 3 of the 6 rows .* delete the folder"):
            load_folder(str(root), size=8, cache_dir=cache)
    assert rows_file.stat().st_size == 3 * 8 * 8 * 3


def test_a_reader_keeps_its_generation_while_an_ingest_compacts_the_store(tmp_path):
    """A training streaming from the store died with FileNotFoundError when an ingest of the same
    folder removed a file, compacted the store and deleted the row file it was reading by name."""
    from medviz.data.datamodule import MemmapImages
    from medviz.store.gather import blocks, gather

    root = write_pngs(tmp_path / "imgs", 6)
    cache = str(tmp_path / "cache")
    load_folder(str(root), size=8, cache_dir=cache)
    store = next((tmp_path / "cache").rglob("index.sqlite")).parent
    reading = open_store(store).images  # what a streaming run holds
    before = gather(reading, np.arange(len(reading)))
    first_file = Path(reading.filename)
    sorted(root.rglob("*.png"))[0].unlink()
    assert len(load_folder(str(root), size=8, cache_dir=cache)) == len(reading) - 1  # compacted meanwhile
    assert not first_file.exists()
    np.testing.assert_array_equal(gather(reading, np.arange(len(reading))[::-1]), before[::-1])
    np.testing.assert_array_equal(np.concatenate(list(blocks(reading, 4))), before)
    images, _ = MemmapImages(reading).__getitems__([2, 0])
    np.testing.assert_array_equal(images.numpy().transpose(0, 2, 3, 1), before[[2, 0]])


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` made read-only for real: a read-only bind mount for root (whom permissions do not
    stop), write permission taken away for anyone else."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], check=True)
        try:
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
    else:
        modes = {path: path.stat().st_mode for path in [folder, *folder.rglob("*")]}
        for path in modes:
            path.chmod(modes[path] & ~0o222)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)


def test_a_complete_store_on_a_read_only_file_system_is_used_and_a_stale_one_is_said(tmp_path, caplog):
    root = write_pngs(tmp_path / "imgs", 6)
    cache = tmp_path / "cache"
    built = load_folder(str(root), size=8, cache_dir=str(cache))
    with read_only(cache):
        with caplog.at_level(logging.INFO, logger="medviz"):
            shared = load_folder(str(root), size=8, cache_dir=str(cache))
        np.testing.assert_array_equal(np.asarray(shared.images), np.asarray(built.images))
        assert "is read-only and up to date: used as it is" in caplog.text
        del shared  # its memory map holds the mount
        gc.collect()
        Image.fromarray(rng_images(1, 8, seed=7)[0]).save(root / "a" / "late.png")
        with pytest.raises(DataError, match=r"cannot be written .* 1 images of .* are new or changed .*MEDVIZ_CACHE"):
            load_folder(str(root), size=8, cache_dir=str(cache))
    other = write_pngs(tmp_path / "other", 4)
    with read_only(cache), pytest.raises(DataError, match=r"cannot build the store of .* set MEDVIZ_CACHE"):
        load_folder(str(other), size=8, cache_dir=str(cache))


def test_a_damaged_index_and_a_full_disk_say_where_and_what_to_do(tmp_path, monkeypatch):
    import errno

    from medviz.store.rows import RowFile

    root = write_pngs(tmp_path / "imgs", 6)
    cache = tmp_path / "cache"
    load_folder(str(root), size=8, cache_dir=str(cache))
    index = next(cache.rglob("index.sqlite"))
    index.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataError, match=rf"the store index {index} is damaged .* delete the folder {index.parent}"):
        load_folder(str(root), size=8, cache_dir=str(cache))

    def disk_full(handle, images):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RowFile, "append", staticmethod(disk_full))
    with pytest.raises(DataError, match=r"no space left for the store of .* free space, or set MEDVIZ_CACHE"):
        load_folder(str(write_pngs(tmp_path / "more", 4)), size=8, cache_dir=str(cache))


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "status").read_text().split("State:\t", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state not in "ZX"  # a zombie has ended; only its exit status waits to be read


def test_a_killed_ingest_leaves_no_worker_running_and_its_slot_file_is_removed_by_the_next(tmp_path):
    import signal
    import sys
    import time

    from medviz.store.slots import remove_dead_slot_files, slot_folder
    from tests.helpers.config import REPO

    root = write_pngs(tmp_path / "imgs", 80)
    ingest_process = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.slow_ingest", str(root), str(tmp_path / "store")], cwd=REPO
    )
    folder = Path(slot_folder(1) or "/tmp")
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and not (workers and list(folder.glob(f"medviz-slots-{ingest_process.pid}-*"))):
        workers = [p for p in _children(ingest_process.pid) if _running(p)]
        time.sleep(0.2)
    slot_files = list(folder.glob(f"medviz-slots-{ingest_process.pid}-*"))
    assert workers and slot_files, "the ingest never started its workers"
    ingest_process.send_signal(signal.SIGKILL)
    ingest_process.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_running(p) for p in workers):
        time.sleep(0.2)
    left = [(p, (Path("/proc") / str(p) / "cmdline").read_bytes()[:200]) for p in workers if _running(p)]
    assert not left, f"processes of the ingest outlived it: {left}"
    assert all(p.exists() for p in slot_files)  # a killed process removes nothing itself ...
    assert remove_dead_slot_files(str(folder)) >= len(slot_files)  # ... the next ingest does
    assert not any(p.exists() for p in slot_files)


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
