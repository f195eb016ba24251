"""The paper's tables from finished run folders: mean ± std over seeds, best per column in bold.

A run folder is any folder with ``config.yaml`` and ``metrics.json`` (what ``train.py`` and
``evaluate.py`` write). Rows are method × augmentation, columns are datasets.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from medviz.evaluation.paper_numbers import Table
from medviz.evaluation.sweep_jobs import MissingJob, RowKey
from medviz.runs.config import saved_config
from medviz.text import markdown_cell, spreadsheet_cell


@dataclass(frozen=True)
class RunResult:
    method: str
    aug: str
    dataset: str
    seed: int
    metrics: dict[str, float]
    path: Path


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Every folder at or below ``paths`` that holds ``metrics.json`` and a saved config."""
    found = set()
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"run folder {path} does not exist")
        for metrics in [path / "metrics.json", *path.rglob("metrics.json")]:
            if metrics.is_file() and saved_config(metrics.parent) is not None:
                found.add(metrics.parent)
    return sorted(found)


def load_run(run_dir: Path) -> RunResult:
    config = yaml.safe_load(saved_config(run_dir).read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return RunResult(
        method=config["method"]["name"],
        aug=config["aug"]["name"],
        dataset=config["dataset"]["name"],
        seed=int(config.get("seed", 0)),
        metrics=metrics,
        path=run_dir,
    )


@dataclass
class Cell:
    """Mean and std over seeds of one metric (std = 0 for a single run)."""

    values: list[float]
    missing: int = 0  # jobs of this cell that failed or did not finish (see medviz.evaluation.sweep_jobs)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0


def aggregate(results: Iterable[RunResult], metric: str) -> dict[RowKey, dict[str, Cell]]:
    """{(method, aug): {dataset: Cell}} over the runs that report ``metric``."""
    table: dict[RowKey, dict[str, Cell]] = defaultdict(dict)
    for result in results:
        if metric not in result.metrics:
            continue
        row = table[(result.method, result.aug)]
        row.setdefault(result.dataset, Cell([])).values.append(float(result.metrics[metric]))
    return dict(table)


def add_missing(table: dict[RowKey, dict[str, Cell]], jobs: Iterable[MissingJob]) -> None:
    """Count each job without results in its cell, so the cell shows n of the runs it should hold."""
    for job in jobs:
        if job.row is not None and job.dataset is not None:
            table.setdefault(job.row, {}).setdefault(job.dataset, Cell([])).missing += 1


def best_rows(table: dict[RowKey, dict[str, Cell]], dataset: str) -> set[RowKey]:
    """Within each method, the augmentation(s) with the highest mean on ``dataset`` (paper's bold)."""
    best: set[RowKey] = set()
    for method in {m for m, _ in table}:
        cells = {
            key: row[dataset].mean
            for key, row in table.items()
            if key[0] == method and dataset in row and row[dataset].values
        }
        if len(cells) > 1:
            top = max(cells.values())
            best |= {key for key, value in cells.items() if np.isclose(value, top, atol=5e-4)}
    return best


def _format(value: float, std: float | None, percent: bool) -> str:
    if percent:
        return f"{100 * value:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")
    return f"{value:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def to_markdown(table: dict[RowKey, dict[str, Cell]], title: str, percent: bool, paper: Table | None = None) -> str:
    """A Markdown table; with ``paper``, each cell shows ours and the paper's value (ours / paper)."""
    datasets = sorted({d for row in table.values() for d in row})
    lines = [f"**{title}**", "", "| method | augmentation | " + " | ".join(map(markdown_cell, datasets)) + " |"]
    lines.append("| --- | --- | " + " | ".join("---" for _ in datasets) + " |")
    bold = {d: best_rows(table, d) for d in datasets}
    for key in sorted(table):
        cells = []
        for dataset in datasets:
            cell = table[key].get(dataset)
            text = (
                "–"
                if not (cell and cell.values)
                else _format(cell.mean, cell.std if len(cell.values) > 1 else None, percent)
            )
            if cell is not None and key in bold[dataset]:
                text = f"**{text}**"
            if cell is not None and cell.missing:
                text += f" (n={len(cell.values)} of {len(cell.values) + cell.missing})"
            if paper is not None:
                ref = paper.get(key, {}).get(dataset)
                text += " / " + ("–" if ref is None else _format(ref[0], ref[1], percent))
            cells.append(text)
        lines.append(f"| {markdown_cell(key[0])} | {markdown_cell(key[1])} | " + " | ".join(cells) + " |")
    if paper is not None:
        lines += ["", "Cells: ours / the paper's. Ours: mean ± std over seeds (n in the CSV)."]
    if any(cell.missing for row in table.values() for cell in row.values()):
        lines += ["", "(n=k of m): only k of the cell's m sweep jobs finished; the others are listed below."]
    return "\n".join(lines) + "\n"


def to_csv(table: dict[RowKey, dict[str, Cell]], path: Path, paper: Table | None = None) -> Path:
    """One line per (method, augmentation, dataset): mean, std, n, and the paper's mean/std."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["method", "augmentation", "dataset", "mean", "std", "n", "n_missing", "paper_mean", "paper_std"]
        )
        for key in sorted(table):
            for dataset, cell in sorted(table[key].items()):
                ref = (paper or {}).get(key, {}).get(dataset, (None, None))
                mean, std = (cell.mean, cell.std) if cell.values else ("", "")
                texts = [spreadsheet_cell(text) for text in (*key, dataset)]
                writer.writerow([*texts, mean, std, len(cell.values), cell.missing, ref[0], ref[1]])
    return path


#: The batch-against-biology table's columns: (metric key, heading); biology first, then batch mixing.
BATCH_COLUMNS = (
    ("knn_accuracy", "kNN (class)"),
    ("silhouette", "silhouette (class)"),
    ("clisi", "cLISI"),
    ("batch_knn_accuracy", "kNN (batch)"),
    ("batch_knn_chance", "chance (batch)"),
    ("batch_ilisi", "iLISI"),
    ("batch_kbet", "kBET"),
    ("batch_asw", "batch ASW"),
    ("graph_connectivity", "graph conn."),
    ("scib_total", "scIB total"),
)


def batch_table(results: Iterable[RunResult]) -> tuple[list[str], list[list[str]]] | None:
    """Runs that measured batch mixing, one row per (method, aug, dataset, batch column) with the mean
    ± std over seeds of each metric: biology (higher: classes kept) beside batch mixing (higher: the
    plate forgotten; kNN on the batch should fall to chance). None when no run has a batch column."""
    groups: dict[tuple[str, str, str], list[RunResult]] = defaultdict(list)
    for result in results:
        if "batch_ilisi" in result.metrics:
            groups[(result.method, result.aug, result.dataset)].append(result)
    if not groups:
        return None
    header = ["method", "aug", "dataset", "runs", *[title for _, title in BATCH_COLUMNS]]
    rows = []
    for (method, aug, dataset), runs in sorted(groups.items()):
        cells = []
        for key, _ in BATCH_COLUMNS:
            values = [float(r.metrics[key]) for r in runs if key in r.metrics and r.metrics[key] == r.metrics[key]]
            cell = Cell(values)
            cells.append(_format(cell.mean, cell.std if len(values) > 1 else None, False) if values else "–")
        rows.append([method, aug, dataset, str(len(runs)), *cells])
    return header, rows


def write_batch_table(results: Iterable[RunResult], out_dir: Path) -> Path | None:
    """``batch_vs_biology.md`` and ``.csv`` in ``out_dir`` (:func:`batch_table`); None when no run has batches."""
    table = batch_table(results)
    if table is None:
        return None
    header, rows = table
    lines = [
        "Batch mixing against biology (docs/map-tools.md): higher is better in every column but kNN (batch), "
        "which should fall to its chance.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows],
    ]
    path = out_dir / "batch_vs_biology.md"
    path.write_text("\n".join(lines) + "\n")
    with open(out_dir / "batch_vs_biology.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([[spreadsheet_cell(c) for c in row] for row in rows])
    return path
