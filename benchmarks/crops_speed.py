"""Cutting single-cell crops from plates: medviz's ingest against the loops people write by hand.

The benchmark writes the built-in synthetic screen (``medviz.data.synthetic.synthplates``) at
Cell Painting's field size (``--side`` px, 5 channels, 16-bit, one TIFF per channel, a
CellProfiler ``Image.csv`` + ``Nuclei.csv``), then, each in a fresh process so that peak memory
is its own:

1. **field loop**: one process reads each field's files once and cuts all its crops (the same
   cutting code), into one in-memory array -- what a careful script does -- and again writing
   each field's crops to an ``.npy`` file of its own (the store writes its crops to disk too,
   and syncs them before each commit);
2. **object loop**: one process opens the field's files again for every object, as hand-written
   cropping scripts often do (timed on the first ``--object-loop`` objects only; it is slow);
3. **medviz ingest** (``dataset=cellprofiler``): fields decoded in the store's worker processes,
   every core, crops written to the store as they come;
4. the same ingest of a screen with ``--scale`` times the plates: its peak memory (the main
   process and the largest worker) should stay where it was, as fields are streamed.

Every step starts with what earlier steps wrote flushed to disk (``os.sync``): the store writes
its crops, and a step that had to wait for another's writes would be measured unfairly. The
loops and the speed ratios run on the larger screen (an ingest starts its worker processes
once, about half a second here); the memory ratio compares the two ingests.

Crops per second are printed side by side, with the ratios.

    python -m benchmarks.crops_speed [--plates 2] [--scale 10] [--side 1080] [--folder /tmp/medviz-crops-bench]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import header

# What each measured step runs, in a process of its own; it prints "seconds crops peak_self_kib peak_children_kib".
_STEP = """
import resource, sys, time
from pathlib import Path
import numpy as np
step, tables, box, cache, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
size = int(sys.argv[6])
from medviz.data.plates.cellprofiler import read_cellprofiler
from medviz.data.plates.crops import CropSettings, cut_crops, inside
from medviz.data.plates.field_reader import read_field
start = time.perf_counter()
settings = CropSettings(box, size)
if step == "ingest":
    from medviz.data.sources.plates import load_cellprofiler
    crops = len(load_cellprofiler(tables, box=box, size=size, cache_dir=cache).metadata)
else:
    fields = read_cellprofiler(tables)
    objects = fields.objects[["_x", "_y"]].to_numpy()
    blocks, crops = [], 0
    for field, positions in zip(fields.fields, fields.objects_of()):
        if step in ("field-loop", "field-loop-files"):
            image = read_field(field.files, field.key)
            centres = objects[positions]
            centres = centres[inside(centres, image.shape[:2], box)]
            block = cut_crops(image, centres, settings)
            if step == "field-loop":
                blocks.append(block)
            else:  # one .npy of crops per field, as scripts that keep their output on disk do
                out = Path(cache) / "loop-crops"
                out.mkdir(parents=True, exist_ok=True)
                np.save(out / f"{field.key.replace('/', '_')}.npy", block)
                del block  # nothing kept: what is written is on disk
            crops += len(centres)
        else:
            for position in positions:
                image = read_field(field.files, field.key)  # the field again, for every object
                centre = objects[[position]]
                if inside(centre, image.shape[:2], box).all():
                    blocks.append(cut_crops(image, centre, settings))
                    crops += 1
                if crops >= limit:
                    break
        if crops >= limit:
            break
    stacked = np.concatenate(blocks) if blocks else None
seconds = time.perf_counter() - start
self_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(seconds, crops, self_kib, children_kib)
"""


def measure(
    step: str, tables: Path, box: int, size: int, cache: Path, limit: int = 10**12
) -> tuple[float, int, float, float]:
    """(seconds, crops, peak RSS of the process in MiB, largest peak RSS of its workers in MiB)."""
    # What earlier steps wrote is flushed first: no step pays for another's writes to disk.
    os.sync()
    done = subprocess.run(
        [sys.executable, "-c", _STEP, step, str(tables), str(box), str(cache), str(limit), str(size)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, crops, self_kib, children_kib = done.stdout.split()
    return float(seconds), int(crops), int(self_kib) / 1024, int(children_kib) / 1024


def write_screen(folder: Path, plates: int, wells: int, sites: int, side: int, cells: int) -> Path:
    from medviz.data.synthetic.synthplates import write_synthplates

    began = time.perf_counter()
    tables = write_synthplates(folder, plates, wells, sites, side=side, cells=cells, cell_size=64)
    print(f"wrote {plates} plates x {wells} wells x {sites} sites of {side} px in {time.perf_counter() - began:.0f} s")
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=2)
    parser.add_argument(
        "--scale", type=int, default=10, help="the memory check's screen has this many times the plates"
    )
    parser.add_argument("--wells", type=int, default=12)
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--side", type=int, default=1080, help="field side in pixels (Cell Painting: 1080)")
    parser.add_argument("--cells", type=int, default=10, help="cells per field side (cells x cells per field)")
    parser.add_argument("--box", type=int, default=96, help="the square cut around each cell (DeepProfiler: 96)")
    parser.add_argument("--size", type=int, default=64, help="the side crops are kept at (resized from the box)")
    parser.add_argument("--object-loop", type=int, default=300, help="objects the per-object loop is timed on")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/medviz-crops-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the screens and stores afterwards")
    args = parser.parse_args()
    header(
        f"crops from {args.plates} plates of {args.side} px fields (5 channels, 16-bit), box {args.box} px "
        f"kept at {args.size} px"
    )
    shutil.rmtree(args.folder, ignore_errors=True)
    small = write_screen(args.folder / "small", args.plates, args.wells, args.sites, args.side, args.cells)
    large = write_screen(args.folder / "large", args.plates * args.scale, args.wells, args.sites, args.side, args.cells)
    # Speed on the larger screen (the workers' start is paid once per ingest); memory, small against large.
    field_s, field_n, field_mib, _ = measure("field-loop", large, args.box, args.size, args.folder / "cache-a")
    files_s, files_n, files_mib, _ = measure("field-loop-files", large, args.box, args.size, args.folder / "cache-a")
    object_s, object_n, _, _ = measure(
        "object-loop", large, args.box, args.size, args.folder / "cache-a", args.object_loop
    )
    small_s, small_n, small_mib, small_workers = measure("ingest", small, args.box, args.size, args.folder / "cache-b")
    large_s, large_n, large_mib, large_workers = measure("ingest", large, args.box, args.size, args.folder / "cache-c")
    rows = [
        ("object loop (field opened per object)", object_s, object_n, "-"),
        ("field loop (each field read once)", field_s, field_n, f"{field_mib:,.0f} (all crops in RAM)"),
        ("field loop, crops written per field", files_s, files_n, f"{files_mib:,.0f}"),
        (
            f"medviz ingest, {args.plates} plate(s)",
            small_s,
            small_n,
            f"{small_mib:,.0f} (workers {small_workers:,.0f})",
        ),
        (
            f"medviz ingest, {args.plates * args.scale} plates",
            large_s,
            large_n,
            f"{large_mib:,.0f} (workers {large_workers:,.0f})",
        ),
    ]
    print(f"{'step':42} {'seconds':>8} {'crops':>8} {'crops/s':>9} {'peak RSS (MiB)':>26}")
    for name, seconds, count, peak in rows:
        print(f"{name:42} {seconds:>8.1f} {count:>8,} {count / seconds:>9,.0f} {peak:>26}")
    rate = large_n / large_s
    print(
        f"ingest vs field loop: {rate / (field_n / field_s):.2f}x (crops in RAM), {rate / (files_n / files_s):.2f}x "
        f"(crops written); vs object loop: {rate / (object_n / object_s):.1f}x; peak RSS at {args.scale}x the "
        f"plates: main {large_mib / small_mib:.2f}x, workers {large_workers / max(small_workers, 1):.2f}x of 1x"
    )
    if not args.keep:
        shutil.rmtree(args.folder, ignore_errors=True)


if __name__ == "__main__":
    main()
