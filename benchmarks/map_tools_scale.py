"""The map tools on a map of a million points: kNN accuracy, silhouette, quality control, figures, explorer.

A synthetic map (10 Gaussian classes, a planted tight cluster of 1,000 near-duplicates and an
isolated island of 2,000 points) stands in for a trained one; its images repeat 4,096 seeded
images, so the tools read real pixels without the set taking 2 GB. Each step is timed on its
own; the explorer is then opened in headless Chromium (`make browser`) for its load time and the
redraw after a zoom step.

    python -m benchmarks.map_tools_scale [--points 1000000] [--skip-silhouette]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import header
from benchmarks.explorer_draw import chromium_timings
from medviz.evaluation.knn import knn_accuracy
from medviz.evaluation.silhouette import silhouette_score
from medviz.maps.explorer import write_explorer
from medviz.maps.figures import all_figures
from medviz.maps.qc import find_groups, recall, sampling_note
from medviz.maps.qc_report import write_report
from medviz.runtime import peak_memory


class RepeatingImages:
    """(N, S, S, 3) uint8 made of ``base`` repeated: row i is ``base[i % len(base)]``."""

    def __init__(self, base: np.ndarray, n: int) -> None:
        self.base, self.shape, self.ndim, self.dtype = base, (n, *base.shape[1:]), base.ndim, base.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        return self.base[np.asarray(index) % len(self.base)]


def planted_map(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """coords (n, 2), labels (n,), planted (n,) bool: 10 classes, 1,000 near-duplicates, an island of 2,000."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    coords = rng.normal(0, 40, (10, 2))[labels] + rng.normal(0, 6, (n, 2))
    coords[:1000] = coords[0] + rng.normal(0, 0.02, (1000, 2))
    coords[1000:3000] = [200, 200] + rng.normal(0, 2, (2000, 2))
    planted = np.zeros(n, bool)
    planted[:3000] = True
    return coords.astype(np.float32), labels, planted


def timed(name: str, fn):
    start = time.perf_counter()
    out = fn()
    print(f"{name:44} {time.perf_counter() - start:>8.1f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--skip-silhouette", action="store_true", help="leave out the silhouette (the longest step)")
    parser.add_argument("--metadata-columns", type=int, default=10, help="metadata columns of the explorer's map")
    parser.add_argument("--explorer-only", action="store_true", help="only the explorer, without and with metadata")
    args = parser.parse_args()
    header(f"map tools on {args.points:,} points")
    coords, labels, planted = planted_map(args.points)
    base = np.random.default_rng(1).integers(0, 256, (4096, 28, 28, 3), dtype=np.uint8)
    images = RepeatingImages(base, args.points)
    class_names = [f"class{k}" for k in range(10)]
    names = [f"class{label}/cell{i:07d}.png" for i, label in enumerate(labels.tolist())]
    out = Path(tempfile.mkdtemp())
    if args.explorer_only:
        explorer_timings(out, coords, labels, class_names, images, names, args.metadata_columns)
        return
    timed("kNN accuracy (k=15, 10 % test)", lambda: knn_accuracy(coords, labels))
    if not args.skip_silhouette:
        timed("silhouette (every point)", lambda: silhouette_score(coords, labels))
    groups = timed("qc: find_groups", lambda: find_groups(coords, images, labels))
    flagged = np.zeros(len(coords), bool)
    for group in groups:
        flagged[group.indices] = True
    print(
        f"   {len(groups)} groups; recall of the {planted.sum():,} planted points: {recall(groups, planted):.3f}; "
        f"other points flagged: {int(flagged[~planted].sum()):,} ({flagged[~planted].mean():.2%})"
    )
    print(f"   note: {sampling_note(len(coords))}")
    timed(
        "qc: report (table, thumbnails, overview map)",
        lambda: write_report(
            out / "qc", coords, labels, class_names, images, groups, planted, sampling_note(len(coords))
        ),
    )
    figures = timed(
        "figures (map, thumbnails, grid; PNG + PDF)",
        lambda: all_figures(coords, labels, class_names, images, out / "figures", "1M points"),
    )
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 2**20:.1f} MiB" for p in figures)
    print(f"   {sizes}")
    print(f"peak RSS of the tools: {peak_memory()['peak_rss_mib']:,.0f} MiB")
    explorer_timings(out, coords, labels, class_names, images, names, args.metadata_columns)


def metadata_table(n: int, columns: int, seed: int = 2) -> pd.DataFrame:
    """``columns`` metadata columns for ``n`` points: half text (plates, wells, treatments ...), half numbers."""
    rng = np.random.default_rng(seed)
    table = {}
    for c in range(columns):
        if c % 2 == 0:
            values = np.array([f"value{v:03d}" for v in range(10 * (c + 1))])
            table[f"Metadata_text{c}"] = pd.Categorical(values[rng.integers(0, len(values), n)])
        else:
            table[f"Metadata_number{c}"] = rng.normal(0, 1, n).astype(np.float32)
    return pd.DataFrame(table)


def explorer_timings(out: Path, coords, labels, class_names, images, names, metadata_columns: int) -> None:
    """The explorer without and with ``metadata_columns`` columns: file size, load and redraw in Chromium."""
    runs = [
        ("no metadata", None),
        (f"{metadata_columns} metadata columns", metadata_table(len(coords), metadata_columns)),
    ]
    for title, metadata in runs:
        path = timed(
            f"explorer, {title}: write",
            lambda metadata=metadata: write_explorer(
                out / "explorer.html", coords, labels, class_names, images, names, metadata=metadata
            ),
        )
        print(f"   file size {path.stat().st_size / 2**20:.1f} MiB")
        load_s, draws = chromium_timings(path)
        print(
            f"explorer, {title}, in headless Chromium: ready after {load_s:.1f} s; redraw after a zoom step: "
            f"median {np.median(draws):.0f} ms, max {max(draws):.0f} ms (10 steps)"
        )


if __name__ == "__main__":
    main()
