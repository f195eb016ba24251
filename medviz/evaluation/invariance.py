"""The invariance miniature's report (``make invariance-miniature``; docs/invariance.md).

Reads the sweeps' run folders -- every ``invariance`` arm on planted-batch sets, the same data
without planted batches (the class kNN the targets compare with), cross-batch positives (weak
supervision, reported apart) -- adds the Harmony + t-SNE baseline of each ``invariance=none`` run,
and writes, per dataset, each arm's metrics (mean ± std over seeds) and its paired difference to
``invariance=none`` over the same seeds with a 95 % bootstrap interval, on the map and on the
128-D output, with the targets met or not.

    python -m medviz.evaluation.invariance multirun/invariance_miniature --out evaluations/invariance_miniature
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from medviz.errors import ConfigError
from medviz.evaluation.paired import PairedDifference, paired_difference
from medviz.evaluation.sweep_jobs import missing_in
from medviz.evaluation.tables import find_run_dirs
from medviz.runs.config import saved_config
from medviz.text import markdown_cell

#: The arms, in the order of the report; ``harmony`` is the baseline, ``cross-batch`` the weakly supervised arm.
#: ``batch + technical``: ``invariance=batch`` with technical augmentations switched on as well.
#: ``<arm> + cross-batch``: that arm with cross-batch positives.
UNSUPERVISED_ARMS = ("none", "homogeneous", "technical", "normalise", "batch")
ARMS = (
    *UNSUPERVISED_ARMS,
    "batch + technical",
    "harmony",
    "cross-batch",
    *(f"{arm} + cross-batch" for arm in UNSUPERVISED_ARMS[1:]),
)
#: (key, label, higher is better). ``batch_knn_above_chance`` = batch kNN accuracy - its chance level.
#: On the 128-D output the class metrics are ``class_knn_accuracy`` and ``class_silhouette``.
METRICS = (
    ("knn_accuracy", "class kNN", True),
    ("silhouette", "class silhouette", True),
    ("batch_knn_above_chance", "batch kNN - chance", False),
    ("batch_ilisi", "iLISI", True),
    ("batch_kbet", "kBET", True),
    ("batch_asw", "batch ASW", True),
    ("scib_total", "scIB total", True),
)
#: The targets on the planted-batch sets (issue text, docs/invariance.md).
BATCH_KNN_WITHIN = 0.05
ILISI_AT_LEAST = 0.8
CLASS_KNN_SHARE = 0.98


@dataclass(frozen=True)
class InvarianceRun:
    """One finished run of the sweeps: its dataset, arm, seed, whether batches were planted, metrics."""

    dataset: str
    arm: str
    seed: int
    planted: bool
    metrics: dict
    path: Path


def read_run(run_dir: Path) -> InvarianceRun:
    """A run folder (or a Harmony baseline's) as an :class:`InvarianceRun`."""
    config = yaml.safe_load(saved_config(run_dir).read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for prefix in ("", "features_"):
        if f"{prefix}batch_knn_accuracy" in metrics:
            above = metrics[f"{prefix}batch_knn_accuracy"] - metrics[f"{prefix}batch_knn_chance"]
            metrics[f"{prefix}batch_knn_above_chance"] = round(float(above), 4)
    dataset = config.get("dataset", {})
    planted = int(dataset.get("batches") or 0) > 0 or dataset.get("batch") is not None
    seed = int(config.get("seed", 0))
    return InvarianceRun(str(dataset.get("name")), arm_of(config), seed, planted, metrics, run_dir)


def arm_of(config: dict) -> str:
    """The arm a run's saved config trained: its ``invariance`` group, with ``+ technical`` when
    technical augmentations were switched on beside it and ``+ cross-batch`` when it paired positives
    across batches; ``harmony`` for a Harmony baseline. Named from every switch, so two runs that
    differ in one are never reported as one arm."""
    if config.get("baseline_of"):
        return "harmony"
    arm = str(config.get("invariance", {}).get("name", "none"))
    technical = config.get("aug", {}).get("transform", {}).get("technical", {}).get("kind", "none")
    if technical not in (None, "none") and arm != "technical":
        arm = "technical" if arm == "none" else f"{arm} + technical"
    if config.get("dataset", {}).get("perturbation"):  # weak supervision on top of the unsupervised arm
        arm = "cross-batch" if arm == "none" else f"{arm} + cross-batch"
    return arm


def arms_in_order(runs: Sequence[InvarianceRun]) -> list[str]:
    """The arms of ``runs``: those of :data:`ARMS` in its order, then any other (a group of the user's
    own, a combination the miniature does not run) by name, so no run is left out of the report."""
    present = {run.arm for run in runs}
    return [arm for arm in ARMS if arm in present] + sorted(present - set(ARMS))


def add_harmony_baselines(runs: list[InvarianceRun], out: Path) -> list[InvarianceRun]:
    """Harmony + t-SNE of every planted ``invariance=none`` run (computed once, kept under ``out``)."""
    from medviz.evaluation.harmony import harmony_baseline  # harmonypy and openTSNE: only when needed

    found = []
    for run in runs:
        if run.arm != "none" or not run.planted:
            continue
        folder = out / "harmony" / f"harmony-{run.path.name}"
        if not (folder / "metrics.json").is_file():
            folder = harmony_baseline(run.path, out / "harmony", k=15, seed=run.seed, max_points=100_000)
        found.append(read_run(folder))
    return found


def by_seed(runs: Sequence[InvarianceRun], metric: str) -> dict[tuple[str, str, bool], dict[int, float]]:
    """(dataset, arm, planted) -> seed -> metric."""
    table: dict[tuple[str, str, bool], dict[int, float]] = defaultdict(dict)
    for run in runs:
        value = run.metrics.get(metric)
        if value is not None and np.isfinite(value):
            table[(run.dataset, run.arm, run.planted)][run.seed] = float(value)
    return table


def _mean_std(values: dict[int, float]) -> str:
    if not values:
        return "—"
    data = np.array(list(values.values()))
    return f"{data.mean():.3f} ± {data.std():.3f}" if len(data) > 1 else f"{data[0]:.3f}"


def _interval(difference: PairedDifference | None) -> str:
    if difference is None:
        return "—"
    return f"{difference.mean:+.3f} [{difference.low:+.3f}, {difference.high:+.3f}]"


def targets(runs: Sequence[InvarianceRun], dataset: str, arm: str) -> dict[str, object]:
    """Whether ``arm`` meets the targets on ``dataset``'s planted batches (means over seeds)."""
    mine = [r for r in runs if r.dataset == dataset and r.arm == arm and r.planted]
    reference = [r for r in runs if r.dataset == dataset and r.arm == "none" and not r.planted]
    if not mine:
        return {}

    def mean(rows: list[InvarianceRun], key: str) -> float:
        values = [r.metrics[key] for r in rows if key in r.metrics]
        return float(np.mean(values)) if values else float("nan")

    above = mean(mine, "batch_knn_above_chance")
    ilisi = mean(mine, "batch_ilisi")
    knn, clean = mean(mine, "knn_accuracy"), mean(reference, "knn_accuracy")
    share = knn / clean if reference else float("nan")
    return {
        "batch_knn_above_chance": above,
        "batch_knn_met": bool(above <= BATCH_KNN_WITHIN),
        "ilisi": ilisi,
        "ilisi_met": bool(ilisi >= ILISI_AT_LEAST),
        "class_knn_share": share,
        "class_knn_met": bool(share >= CLASS_KNN_SHARE) if np.isfinite(share) else None,
    }


def _section(runs: Sequence[InvarianceRun], dataset: str, prefix: str) -> tuple[list[str], dict]:
    """The table of one dataset on the map (``prefix`` '') or on the 128-D output ('features_')."""
    where = "the 2-D map" if not prefix else "the 128-D output (Harmony: its corrected components)"
    header = "| arm | seeds | " + " | ".join(label for _, label, _ in METRICS) + " |"
    lines = [f"#### {dataset}: on {where}", "", header, "| --- | --- |" + " --- |" * len(METRICS)]
    found: dict = {}
    on_features = {"knn_accuracy": "class_knn_accuracy", "silhouette": "class_silhouette"}
    tables = {key: by_seed(runs, prefix + (on_features.get(key, key) if prefix else key)) for key, _, _ in METRICS}
    for arm in arms_in_order(runs):
        for planted in (True, False):
            if planted is False and arm != "none":
                continue
            cells, seeds = [], set()
            for key, _, _ in METRICS:
                values = tables[key].get((dataset, arm, planted), {})
                seeds |= set(values)
                reference = tables[key].get((dataset, "none", True), {})
                difference = paired_difference(values, reference) if arm != "none" and planted else None
                cells.append(_mean_std(values) + (f"<br>{_interval(difference)}" if difference else ""))
                found.setdefault(arm if planted else "none (no planted batches)", {})[key] = {
                    "values": values,
                    "difference": None if difference is None else difference.__dict__,
                }
            if seeds:
                name = arm if planted else "none, without planted batches"
                lines.append(f"| {markdown_cell(name)} | {len(seeds)} | " + " | ".join(cells) + " |")
    return lines + [""], found


def report(sweeps: Sequence[Path], out: Path, harmony: bool = True) -> dict:
    """Write ``report.md`` and ``report.json`` to ``out`` from the runs under ``sweeps``."""
    absent = [sweep for sweep in sweeps if not Path(sweep).exists()]
    sweeps = [sweep for sweep in sweeps if Path(sweep).exists()]
    run_dirs = find_run_dirs(sweeps)
    if not run_dirs:
        raise ConfigError(f"no finished runs under {', '.join(map(str, sweeps))}: run make invariance-miniature first")
    runs = [read_run(d) for d in run_dirs]
    out.mkdir(parents=True, exist_ok=True)
    if harmony:
        runs += add_harmony_baselines(runs, out)
    lines = [
        "# Invariance to technical batches, in miniature",
        "",
        "Each cell: mean ± std over seeds; below it, the paired difference to `invariance=none` over the same",
        "seeds with its 95 % bootstrap interval. `batch kNN - chance`: lower is better (0 = batches mixed).",
        "Harmony is the baseline (Harmony on the 128-D output, then t-SNE); cross-batch positives read",
        "a perturbation label (weak supervision).",
        "",
    ]
    result: dict = {"datasets": {}}
    for dataset in sorted({r.dataset for r in runs}):
        lines += [f"## {dataset}", ""]
        entry: dict = {"targets": {}}
        for prefix in ("", "features_"):
            section, found = _section(runs, dataset, prefix)
            lines += section
            entry["map" if not prefix else "features"] = found
        lines += ["Targets on the planted batches (means over seeds):", ""]
        for arm in arms_in_order(runs):
            met = targets(runs, dataset, arm)
            if not met:
                continue
            entry["targets"][arm] = met
            share = met["class_knn_share"]
            lines.append(
                f"- {markdown_cell(arm)}: batch kNN - chance {met['batch_knn_above_chance']:.3f} "
                f"({'met' if met['batch_knn_met'] else 'not met'}, target ≤ {BATCH_KNN_WITHIN}); iLISI "
                f"{met['ilisi']:.3f} ({'met' if met['ilisi_met'] else 'not met'}, ≥ {ILISI_AT_LEAST}); class kNN "
                + (
                    f"{share:.3f} of the unplanted data's ({'met' if met['class_knn_met'] else 'not met'}, "
                    f"≥ {CLASS_KNN_SHARE})"
                    if np.isfinite(share)
                    else "(no run without planted batches to compare with)"
                )
            )
        lines.append("")
        result["datasets"][dataset] = entry
    if absent:
        lines += ["## Sweeps not run", "", *[f"- {markdown_cell(str(sweep))}" for sweep in absent], ""]
    missing = missing_in(list(sweeps))
    if missing:
        lines += ["## Runs that did not finish", "", *[f"- {job.describe()}" for job in missing], ""]
    (out / "report.md").write_text("\n".join(lines))
    (out / "report.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep folders (or run folders) to read")
    parser.add_argument("--out", type=Path, default=Path("evaluations/invariance_miniature"))
    parser.add_argument("--no-harmony", action="store_true", help="leave out the Harmony baseline")
    args = parser.parse_args(argv)
    report(args.sweeps, args.out, harmony=not args.no_harmony)
    print((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
