"""Ingest of a folder of PNG crops: the store's parallel ingest vs the single-process loop it replaces.

The benchmark writes ``--images`` 64 px RGB PNG crops (smooth random blobs, a few kB each, in 8
class folders), then, each in a fresh process so that peak memory is its own:

1. the loop medviz used before the store: one process decodes every file in turn into one
   in-memory array (``read_many``);
2. the store's ingest with every core (``ingest_folder``), its peak RSS and its workers';
3. the same ingest after 1 % more files were added (only those are read), finding them by every
   file's size and mtime (``dataset.ingest_check=stat``, the default);
4. again after another 1 %, by names only (``dataset.ingest_check=names``).

Files are written before both are timed, so both read them from the page cache.

    python -m benchmarks.ingest [--images 200000] [--size 64] [--folder /tmp/medviz-ingest-bench]
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import header

CLASSES = 8


def write_crops(folder: Path, start: int, count: int, size: int) -> None:
    """PNG crops ``start`` ... ``start + count - 1``: 8x8 random colours blown up to ``size`` px."""
    for number in range(start, start + count):
        rng = np.random.default_rng(number)
        small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        target = folder / f"class{number % CLASSES}"
        small.resize((size, size), Image.Resampling.BILINEAR).save(target / f"cell{number:07d}.png")


def write_folder(folder: Path, start: int, count: int, size: int) -> None:
    for c in range(CLASSES):
        (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
    step = max(1, count // 64)
    jobs = [(folder, s, min(step, start + count - s), size) for s in range(start, start + count, step)]
    with multiprocessing.get_context("spawn").Pool() as pool:
        pool.starmap(write_crops, jobs)


# What each measured step runs, in a process of its own; it prints "seconds peak_self_kib peak_children_kib".
_STEP = """
import resource, sys, time
from pathlib import Path
step, folder, size, cache, check = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
start = time.perf_counter()
if step == "loop":
    from medviz.data.sources.folder import scan_folder
    from medviz.data.readers.images import read_many
    files = [Path(file.payload) for file in scan_folder(folder)[0]]
    images, kept = read_many(files, size, str(folder))
    assert len(kept) == len(files)
else:
    from medviz.data.sources.folder import ingest_folder
    store, report = ingest_folder(str(folder), size=size, cache_dir=cache, check=check)
    print(report, file=sys.stderr)
seconds = time.perf_counter() - start
# VmHWM: this process's own peak (ru_maxrss would include the parent's memory from before exec).
self_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(seconds, self_kib, children_kib)
"""


def measure(step: str, folder: Path, size: int, cache: Path, check: str = "stat") -> tuple[float, float, float]:
    """(seconds, peak RSS of the process in MiB, largest peak RSS of its worker processes in MiB)."""
    done = subprocess.run(
        [sys.executable, "-c", _STEP, step, str(folder), str(size), str(cache), check],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, self_kib, children_kib = done.stdout.split()
    return float(seconds), int(self_kib) / 1024, int(children_kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/medviz-ingest-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the folder and the store afterwards")
    args = parser.parse_args()
    header(f"ingest of {args.images:,} PNG crops of {args.size} px")
    shutil.rmtree(args.folder, ignore_errors=True)
    images, cache = args.folder / "images", args.folder / "cache"
    began = time.perf_counter()
    write_folder(images, 0, args.images, args.size)
    print(f"wrote {args.images:,} files in {time.perf_counter() - began:.0f} s")
    loop_s, loop_mib, _ = measure("loop", images, args.size, cache)
    first_s, first_mib, workers_mib = measure("ingest", images, args.size, cache)
    extra = max(1, args.images // 100)
    write_folder(images, args.images, extra, args.size)
    more_s, more_mib, more_workers_mib = measure("ingest", images, args.size, cache)
    write_folder(images, args.images + extra, extra, args.size)
    names_s, names_mib, _ = measure("ingest", images, args.size, cache, check="names")
    rows = [
        ("single-process loop (before the store)", loop_s, args.images, f"{loop_mib:,.0f}"),
        ("store ingest, every core", first_s, args.images, f"{first_mib:,.0f} (workers {workers_mib:,.0f})"),
        (
            f"+{extra:,} files (1 %), only those read",
            more_s,
            extra,
            f"{more_mib:,.0f} (workers {more_workers_mib:,.0f})",
        ),
        (f"+{extra:,} more, ingest_check=names", names_s, extra, f"{names_mib:,.0f}"),
    ]
    print(f"{'step':40} {'seconds':>8} {'images/s':>10} {'peak RSS (MiB)':>22}")
    for name, seconds, count, peak in rows:
        print(f"{name:40} {seconds:>8.1f} {count / seconds:>10,.0f} {peak:>22}")
    print(
        f"ingest vs loop: {loop_s / first_s:.2f}x; adding 1 % costs {100 * more_s / first_s:.1f} % of the first "
        f"ingest (by size and mtime), {100 * names_s / first_s:.1f} % (by names)"
    )
    if not args.keep:
        shutil.rmtree(args.folder, ignore_errors=True)


if __name__ == "__main__":
    main()
