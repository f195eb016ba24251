"""The paper's augmentation claim in miniature: one report from the sweeps of `make paper-miniature`.

The paper (§5, Tables 2-3 and the CIFAR-10 control) finds that rotation augmentations make better
maps of microscopy, where orientation means nothing, and worse maps of natural images, where it
carries class information. The report gives, per dataset and augmentation set, map kNN accuracy
and silhouette (mean ± std over seeds, pixel t-SNE beside them), the **paired difference** of each
rotation set to ``aug=default`` over the same seeds with its 95 % bootstrap interval
(:mod:`medviz.evaluation.paired`), whether that direction agrees with the paper's claim, SimCLR's
linear evaluation (Table 5) where the sweeps hold SimCLR runs, and the maps of seed 0 as one figure.

    python -m medviz.evaluation.miniature multirun/paper_miniature multirun/paper_miniature_simclr \
        --out evaluations/paper_miniature
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medviz.errors import ConfigError
from medviz.evaluation.linear import held_out, linear_probe_accuracy
from medviz.evaluation.paired import PairedDifference, paired_difference
from medviz.evaluation.sweep_jobs import missing_in
from medviz.evaluation.tables import Cell, RunResult, find_run_dirs, load_run
from medviz.maps.plots import plot_panel_rows
from medviz.text import markdown_cell

AUGS = ("default", "rot90", "randrot")
#: What the paper finds for rotations against the default set: better maps where orientation means
#: nothing (microscopy and its stand-ins), worse where it carries class information (natural images).
ORIENTED = frozenset({"cifar10", "digits"})
METRICS = (("knn_accuracy", "map kNN"), ("silhouette", "map silhouette"))
PIXELS = (("pixel_tsne_knn_accuracy", "pixel t-SNE kNN"), ("pixel_tsne_silhouette", "pixel t-SNE silhouette"))


def expected_direction(dataset: str) -> str:
    """The paper's direction for rotations vs ``default`` on ``dataset``: ``higher`` or ``lower``."""
    return "lower" if dataset in ORIENTED else "higher"


def agreement(difference: PairedDifference | None, dataset: str) -> str:
    if difference is None:
        return "fewer than 2 seeds"
    if difference.direction == "no clear difference":
        return "cannot tell (interval includes 0)"
    return "agrees" if difference.direction == expected_direction(dataset) else "disagrees"


def by_seed(runs: Sequence[RunResult], metric: str) -> dict[tuple[str, str, str], dict[int, float]]:
    """(method, dataset, aug) -> seed -> metric, for the runs that have it."""
    table: dict[tuple[str, str, str], dict[int, float]] = defaultdict(dict)
    for run in runs:
        if metric in run.metrics:
            table[(run.method, run.dataset, run.aug)][run.seed] = float(run.metrics[metric])
    return table


def _mean_std(values: dict[int, float]) -> str:
    if not values:
        return "-"
    cell = Cell(list(values.values()))
    return f"{cell.mean:.3f} ± {cell.std:.3f}" if len(values) > 1 else f"{cell.mean:.3f}"


def _interval(difference: PairedDifference | None) -> str:
    if difference is None:
        return "-"
    return f"{difference.mean:+.3f} [{difference.low:+.3f}, {difference.high:+.3f}]"


def linear_accuracies(runs: Sequence[RunResult]) -> list[RunResult]:
    """SimCLR/BYOL runs with their linear-evaluation accuracy added as ``linear_accuracy``: on the
    official test split where the run saved one, else on a class-stratified 20 % held out (seed 0)."""
    out = []
    for run in runs:
        features_path = run.path / "features.npz"
        if not features_path.is_file():
            continue
        features = np.load(features_path)
        split_path = run.path / "split.npy"
        is_test = np.load(split_path) == "test" if split_path.is_file() else held_out(features["labels"])
        accuracy = linear_probe_accuracy(features["features"], features["labels"], is_test)
        out.append(RunResult(run.method, run.aug, run.dataset, run.seed, {"linear_accuracy": accuracy}, run.path))
    return out


Comparison = dict[str, dict[str, dict]]  # dataset -> aug -> {"values": seed -> value, "difference": ...}
_EMPTY = {"values": {}, "difference": None}


def _comparison(runs: Sequence[RunResult], metric: str, method: str) -> Comparison:
    """dataset -> aug -> the metric per seed and its paired difference to ``default`` (None for default)."""
    values = by_seed(runs, metric)
    out: Comparison = defaultdict(dict)
    for (run_method, dataset, aug), seeds in sorted(values.items()):
        if run_method == method:
            reference = values.get((method, dataset, "default"), {})
            difference = paired_difference(seeds, reference) if aug != "default" else None
            out[dataset][aug] = {"values": seeds, "difference": difference}
    return out


def _sorted_augs(cells: dict) -> list[str]:
    return sorted(cells, key=lambda aug: (AUGS.index(aug) if aug in AUGS else len(AUGS), aug))


def _claim_and_verdicts(dataset: str, aug: str, cells: Sequence[dict]) -> tuple[str, list[str]]:
    if aug == "default":
        return "-", ["-"] * len(cells)
    return f"rotations {expected_direction(dataset)}", [agreement(cell["difference"], dataset) for cell in cells]


def _maps_section(comparisons: dict[str, Comparison], method: str) -> tuple[list[str], dict]:
    names = [name for _, name in METRICS + PIXELS]
    lines = [
        f"## {method} maps: mean ± std over seeds, and each set against `default` seed for seed",
        "",
        f"| dataset | aug | seeds | {' | '.join(names)} | kNN - default [95 % CI] | silhouette - default [95 % CI] "
        "| paper's claim | kNN verdict | silhouette verdict |",
        "|" + " --- |" * (len(names) + 8),
    ]
    found: dict = {}
    for dataset, cells in sorted(comparisons["knn_accuracy"].items()):
        for aug in _sorted_augs(cells):
            by_metric = {metric: comparisons[metric][dataset].get(aug, _EMPTY) for metric, _ in METRICS + PIXELS}
            knn, silhouette = by_metric["knn_accuracy"], by_metric["silhouette"]
            claim, verdicts = _claim_and_verdicts(dataset, aug, [knn, silhouette])
            columns = [_mean_std(cell["values"]) for cell in by_metric.values()]
            lines.append(
                f"| {markdown_cell(dataset)} | {markdown_cell(aug)} | {len(knn['values'])} | {' | '.join(columns)} "
                f"| {_interval(knn['difference'])} "
                f"| {_interval(silhouette['difference'])} | {claim} | {' | '.join(verdicts)} |"
            )
            found.setdefault(dataset, {})[aug] = {
                metric: {"values": cell["values"], "difference": _as_dict(cell["difference"])}
                for metric, cell in by_metric.items()
            } | {"verdicts": dict(zip(("knn_accuracy", "silhouette"), verdicts, strict=True))}
    return lines, found


def _pixel_knn(runs: Sequence[RunResult], dataset: str) -> str:
    """Pixel t-SNE kNN of ``dataset`` over seeds (it does not depend on the method or augmentation)."""
    return _mean_std({r.seed: r.metrics["pixel_tsne_knn_accuracy"] for r in runs if r.dataset == dataset and
                      "pixel_tsne_knn_accuracy" in r.metrics})  # fmt: skip


def _linear_section(linear: Comparison, runs: Sequence[RunResult]) -> tuple[list[str], dict]:
    if not linear:
        return [], {}
    lines = [
        "## SimCLR: linear evaluation of its features (Table 5)",
        "",
        "| dataset | aug | seeds | linear accuracy | - default [95 % CI] | paper's claim | verdict | pixel t-SNE kNN |",
        "|" + " --- |" * 8,
    ]
    found: dict = {}
    for dataset, cells in sorted(linear.items()):
        for aug in _sorted_augs(cells):
            cell = cells[aug]
            claim, (verdict,) = _claim_and_verdicts(dataset, aug, [cell])
            lines.append(
                f"| {markdown_cell(dataset)} | {markdown_cell(aug)} | {len(cell['values'])} "
                f"| {_mean_std(cell['values'])} | {_interval(cell['difference'])} | {claim} | {verdict} "
                f"| {_pixel_knn(runs, dataset)} |"
            )
            found.setdefault(dataset, {})[aug] = {
                "values": cell["values"],
                "difference": _as_dict(cell["difference"]),
                "verdict": verdict,
            }
    lines += ["", "Datasets without an official split are evaluated on a class-stratified 20 % held out (seed 0)."]
    return lines, found


def _missing_summary(jobs: Sequence) -> str:
    """``; N jobs without results (by status), the first few named`` or nothing."""
    if not jobs:
        return ""
    counts = defaultdict(int)
    for job in jobs:
        counts[job.status] += 1
    statuses = ", ".join(f"{count} {status}" for status, count in counts.items())
    named = "; ".join(job.describe() for job in jobs[:3]) + ("; ..." if len(jobs) > 3 else "")
    return f"; **{len(jobs)} jobs without results** ({statuses}): {named}"


def report(sweeps: Sequence[Path], out: Path, method: str = "tsimcne") -> dict:
    """Write ``report.md``, ``report.json`` and ``maps_seed0.png`` to ``out``; returns the JSON.

    Raises ConfigError, before writing anything, when ``sweeps`` hold no finished run."""
    runs = [load_run(path) for path in find_run_dirs(sweeps)]
    if not runs:
        raise ConfigError(f"no finished runs (metrics.json and config.yaml) in {', '.join(map(str, sweeps))}")
    out.mkdir(parents=True, exist_ok=True)
    missing_jobs = missing_in(list(sweeps))
    missing = [job.describe() for job in missing_jobs]
    comparisons = {metric: _comparison(runs, metric, method) for metric, _ in METRICS + PIXELS}
    map_lines, maps = _maps_section(comparisons, method)
    linear_lines, linear = _linear_section(_comparison(linear_accuracies(runs), "linear_accuracy", "simclr"), runs)
    lines = [
        "# The paper's augmentation claim in miniature",
        "",
        f"{len(runs)} finished runs from {', '.join(map(str, sweeps))}{_missing_summary(missing_jobs)}",
        "",
        *map_lines,
        "",
        *linear_lines,
    ]
    figure = seed0_figure(runs, method, out / "maps_seed0.png")
    if figure is not None:
        lines += ["", "## The maps of seed 0", "", f"![maps of seed 0]({figure.name})"]
    lines += [
        "",
        "Differences are (set - default) over the seeds both have; the interval is the 2.5-97.5 percentile of "
        "10,000 bootstrap means of those differences. A verdict needs an interval that excludes 0.",
    ]
    result = {"runs": len(runs), "missing": missing, "maps": maps, "linear": linear}
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "report.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    return result


def _as_dict(difference: PairedDifference | None) -> dict | None:
    if difference is None:
        return None
    return {"mean": difference.mean, "low": difference.low, "high": difference.high, "seeds": list(difference.seeds)}


def seed0_figure(runs: Sequence[RunResult], method: str, path: Path) -> Path | None:
    """The seed-0 maps of ``method``, one row per dataset, one panel per augmentation set (None: none)."""
    rows = []
    for dataset in sorted({run.dataset for run in runs if run.method == method}):
        chosen = {r.aug: r for r in runs if r.method == method and r.dataset == dataset and r.seed == 0}
        panels, labels, names = [], None, None
        for aug in _sorted_augs(chosen):
            saved = np.load(chosen[aug].path / "embedding.npz")
            labels, names = saved["labels"], [str(n) for n in saved["class_names"]]
            panels.append((f"aug={aug}", saved["embedding"], chosen[aug].metrics))
        if panels:
            rows.append((dataset, labels, names, panels))
    return plot_panel_rows(rows, path) if rows else None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep or run folders (searched for finished runs)")
    parser.add_argument("--out", type=Path, default=Path("evaluations/paper_miniature"))
    parser.add_argument("--method", default="tsimcne", help="the method whose maps are compared")
    args = parser.parse_args(argv)
    sweeps = [s for s in args.sweeps if s.exists()]
    if not sweeps:
        parser.error(f"none of {', '.join(map(str, args.sweeps))} exists: run the sweeps first (make paper-miniature)")
    try:
        report(sweeps, args.out, args.method)
    except ConfigError as error:
        parser.error(str(error))
    print((args.out / "report.md").read_text())
    figure = ", maps_seed0.png" if (args.out / "maps_seed0.png").is_file() else ""
    print(f"written: {args.out / 'report.md'}, report.json{figure}")


if __name__ == "__main__":
    main()
