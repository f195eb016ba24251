"""The store when things go wrong: damage, read-only caches, full disks, killed or interrupted ingests,
oversize images and link loops -- each said with what to do, and never a wrong image used silently."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medviz.data.readers.images import read_resized
from medviz.data.sources.folder import load_folder
from medviz.errors import DataError
from medviz.store.read import open_store
from tests.helpers.commands import medviz
from tests.helpers.formats import rng_images, write_pngs


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
