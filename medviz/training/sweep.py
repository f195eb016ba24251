"""Hydra multiruns: each job's status, and a summary table of the whole sweep kept up to date.

:class:`SweepSummary` is a Hydra callback (``hydra.callbacks`` in ``conf/train.yaml``). After
every job it writes ``status.json`` into the job's folder and rewrites ``summary.csv`` and
``summary.md`` in the sweep folder from all jobs finished so far -- so the summary exists even
when a job fails or the sweep is stopped, and jobs run by a cluster launcher in other processes
add their own rows. A failed job is recorded, the other jobs run, and the sweep ends with the
summary and one line naming the failed jobs (exit 1), not a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from medviz.errors import MedvizError
from medviz.text import markdown_cell, spreadsheet_cell

log = logging.getLogger("medviz")

#: Metrics shown first in the summary, in this order; any other numeric metric follows.
_MAIN_METRICS = (
    "knn_accuracy",
    "silhouette",
    "scib_total",
    "batch_ilisi",
    "batch_knn_accuracy",
    "pixel_tsne_knn_accuracy",
    "pixel_tsne_silhouette",
    "train_minutes",
)


def sweep_name() -> str | None:
    """The sweep folder's name inside a Hydra multirun job; None in a single run or outside Hydra."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    # The job's folder is <sweep folder>/<job>. Not hydra.sweep.dir: HydraConfig holds a copy of the
    # config without its resolver cache, so a time stamp in it would be resolved anew, to another time.
    return Path(hydra_cfg.runtime.output_dir).parent.name


def in_multirun() -> bool:
    return sweep_name() is not None


class SweepSummary(Callback):
    """Hydra callback: per-job ``status.json`` and a sweep summary after every job (multirun only)."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        hydra_cfg = job_return.hydra_cfg.hydra
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return
        # The job's own config keeps the resolver cache, so its sweep folder is the one the jobs
        # write into (job_return.hydra_cfg would resolve a time stamp again, to a later second).
        sweep_dir = Path(str(config.hydra.sweep.dir))
        failed = job_return.status == JobStatus.FAILED
        error = job_return._return_value if failed else None  # reading .return_value would re-raise it
        status = {
            "job": int(hydra_cfg.job.num),
            "overrides": list(job_return.overrides or []),
            "status": "failed" if failed else "completed",
            "error": describe_error(error) if failed else None,
        }
        _write_atomic(Path(hydra_cfg.runtime.output_dir) / "status.json", json.dumps(status, indent=2) + "\n")
        if failed:
            log.error(
                f"sweep job {status['job']} ({' '.join(status['overrides'])}) failed: {status['error']}; "
                "the other jobs still run"
            )
            if not isinstance(error, MedvizError):  # a bug, not bad input: keep the traceback in the job's log
                log.error("".join(traceback.format_exception(error)))
            # The failure is recorded and reported: marked done here, Hydra's sweeper does not re-raise
            # it after the last job (which would skip on_multirun_end, its summary and our exit code).
            job_return.status = JobStatus.COMPLETED
            job_return.return_value = None
        write_summary(sweep_dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        paths = write_summary(sweep_dir)
        if not paths:
            return
        print(Path(paths[1]).read_text(), flush=True)
        print(f"sweep summary: {paths[0]} and {paths[1]}", flush=True)
        failed = [row for row in collect_jobs(sweep_dir) if row["status"] == "failed"]
        if failed:
            jobs = ", ".join(f"job {row['job']} ({' '.join(row['overrides'])}): {row['error']}" for row in failed)
            print(f"medviz: error: {len(failed)} sweep job(s) failed -- {jobs}", file=sys.stderr, flush=True)
            sys.exit(1)


def describe_error(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    if isinstance(error, MedvizError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def collect_jobs(sweep_dir: Path) -> list[dict]:
    """One row per finished job of the sweep (its status.json plus its metrics.json when it completed)."""
    rows = []
    for status_file in sorted(sweep_dir.glob("*/status.json")):
        row = json.loads(status_file.read_text())
        metrics_file = status_file.parent / "metrics.json"
        row["metrics"] = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        row["folder"] = status_file.parent.name
        rows.append(row)
    return sorted(rows, key=lambda row: row["job"])


def metric_columns(rows: list[dict]) -> list[str]:
    present = {key for row in rows for key, value in row["metrics"].items() if isinstance(value, int | float)}
    main = [key for key in _MAIN_METRICS if key in present]
    return main + sorted(present - set(main) - {"n_images", "epochs", "image_size"})


def varying(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Split each job's overrides into those shared by every job and those the sweep varies.

    Returns:
        (common overrides, per-row varying overrides) -- e.g. ``["backbone=tinycnn"]`` and
        ``[["aug=rot90", "seed=0"], ...]``.
    """
    common = set.intersection(*(set(row["overrides"]) for row in rows)) if rows else set()
    shared = [item for item in rows[0]["overrides"] if item in common] if rows else []
    return shared, [[item for item in row["overrides"] if item not in common] for row in rows]


def setting_of(overrides: list[str]) -> str:
    """The overrides that define a setting: all but the seed, so seeds of one setting are averaged."""
    return " ".join(item for item in overrides if not item.startswith("seed=")) or "(all jobs)"


def write_summary(sweep_dir: Path) -> tuple[Path, Path] | None:
    """Write ``summary.csv`` (one row per job) and ``summary.md`` (by setting, then by job); None if no job ended."""
    rows = collect_jobs(sweep_dir)
    if not rows:
        return None
    columns = metric_columns(rows)
    csv_path = sweep_dir / "summary.csv"
    lines = [["job", "overrides", "status", *columns, "error", "folder"]]
    for row in rows:
        values = [row["metrics"].get(key, "") for key in columns]
        lines.append(
            [row["job"], " ".join(row["overrides"]), row["status"], *values, row["error"] or "", row["folder"]]
        )
    _write_atomic(csv_path, _csv_text(lines))
    md_path = sweep_dir / "summary.md"
    _write_atomic(md_path, _markdown(sweep_dir, rows, columns))
    return csv_path, md_path


def _markdown(sweep_dir: Path, rows: list[dict], columns: list[str]) -> str:
    failed = [row for row in rows if row["status"] == "failed"]
    common, varied = varying(rows)
    out = [f"# Sweep {sweep_dir.name}: {len(rows)} runs, {len(rows) - len(failed)} completed, {len(failed)} failed", ""]
    if common:
        out += [f"Every run: {markdown_cell(' '.join(common))}", ""]
    out += ["## By setting (mean ± std over seeds)", "", _table_header(["setting", "completed", *columns])]
    settings: dict[str, list[dict]] = {}
    for row, overrides in zip(rows, varied, strict=True):
        settings.setdefault(setting_of(overrides), []).append(row)
    for setting, group in settings.items():
        done = [row for row in group if row["status"] == "completed"]
        cells = [_mean_std([row["metrics"][key] for row in done if key in row["metrics"]]) for key in columns]
        out.append(f"| {markdown_cell(setting)} | {len(done)}/{len(group)} | " + " | ".join(cells) + " |")
    out += ["", "## Runs", "", _table_header(["job", "overrides", "status", *columns, "folder"])]
    for row, overrides in zip(rows, varied, strict=True):
        cells = [_number(row["metrics"][key]) if key in row["metrics"] else "" for key in columns]
        out.append(
            f"| {row['job']} | {markdown_cell(' '.join(overrides))} | {row['status']} | "
            + " | ".join(cells)
            + f" | {markdown_cell(row['folder'])} |"
        )
    if failed:
        out += ["", "## Failed runs", ""]
        out += [f"- job {row['job']} ({markdown_cell(row['folder'])}): {markdown_cell(row['error'])}" for row in failed]
    return "\n".join(out) + "\n"


def _table_header(names: list[str]) -> str:
    return "| " + " | ".join(names) + " |\n|" + "---|" * len(names)


def _number(value: float) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _mean_std(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return _number(float(values[0]))
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def _csv_text(lines: list[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([spreadsheet_cell(cell) for cell in line] for line in lines)
    return buffer.getvalue()


def _write_atomic(path: Path, text: str) -> None:
    """Write via a process-unique temporary file and rename: parallel jobs never leave a torn file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
