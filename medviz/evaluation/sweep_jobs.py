"""The jobs of a sweep that left no result: failed, stopped before the end, or never started.

Tables average the runs that finished; these are the ones they leave out, so that a mean over
two seeds is never mistaken for one over three. A sweep folder is one with Hydra's
``multirun.yaml``; its job folders hold ``.hydra/`` (the job's config and overrides) and, once a
job ends under medviz, ``status.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import OmegaConf

RowKey = tuple[str, str]


@dataclass(frozen=True)
class MissingJob:
    """A job without results; ``row`` and ``dataset`` say which table cell it belongs to (when known)."""

    sweep: Path
    job: int
    overrides: tuple[str, ...]
    status: str  # "failed", "unfinished" (started, no results) or "never started"
    error: str | None = None
    row: RowKey | None = None
    dataset: str | None = None

    def describe(self) -> str:
        what = " ".join(self.overrides) or "overrides unknown"
        reason = f": {self.error}" if self.error else ""
        return f"{self.sweep.name} job {self.job} ({what}) {self.status}{reason}"


def expected_jobs(multirun_yaml: Path) -> int | None:
    """How many jobs the sweep launches (the product of its swept values); None when it cannot tell."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        saved = yaml.safe_load(multirun_yaml.read_text()) or {}
        hydra = saved.get("hydra", {})
        params = hydra.get("sweeper", {}).get("params") or {}
        lines = [f"{key}={value}" for key, value in params.items()] + list(hydra.get("overrides", {}).get("task", []))
        by_key = {override.get_key_element(): override for override in OverridesParser.create().parse_overrides(lines)}
        counts = [len(list(o.sweep_string_iterator())) if o.is_sweep_override() else 1 for o in by_key.values()]
    except Exception:  # an unusual sweeper or a hand-edited file: report what the folders show
        return None
    return math.prod(counts)


def _cell_of(job_dir: Path) -> tuple[RowKey | None, str | None]:
    """(method, aug) and dataset names from the job's saved config, or (None, None)."""
    try:
        config = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
        names = [str(OmegaConf.select(config, f"{group}.name")) for group in ("method", "aug", "dataset")]
    except Exception:  # no config saved, or names that need Hydra's run-time values
        return None, None
    return (names[0], names[1]), names[2]


def _job_number(job_dir: Path) -> int | None:
    try:
        return int(yaml.safe_load((job_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["num"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        head = job_dir.name.split("_", 1)[0]
        return int(head) if head.isdigit() else None


def _overrides(job_dir: Path) -> tuple[str, ...]:
    try:
        return tuple(yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or [])
    except (OSError, yaml.YAMLError):
        return ()


def missing_jobs(sweep_dir: Path) -> list[MissingJob]:
    """Every job of one sweep folder that has no ``metrics.json``, in job order."""
    missing, seen = [], set()
    for job_dir in sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir() or (p / "status.json").is_file()):
        status_file = job_dir / "status.json"
        status = json.loads(status_file.read_text()) if status_file.is_file() else {}
        number = status.get("job", _job_number(job_dir))
        seen.add(number)
        if (job_dir / "metrics.json").is_file():
            continue
        row, dataset = _cell_of(job_dir)
        failed = status.get("status") == "failed"
        missing.append(
            MissingJob(
                sweep=sweep_dir,
                job=number if number is not None else -1,
                overrides=tuple(status.get("overrides", _overrides(job_dir))),
                status="failed" if failed else "unfinished",
                error=status.get("error") if failed else "started but left no results (stopped, killed or running)",
                row=row,
                dataset=dataset,
            )
        )
    total = expected_jobs(sweep_dir / "multirun.yaml")
    for number in range(total or 0):
        if number not in seen:
            missing.append(MissingJob(sweep=sweep_dir, job=number, overrides=(), status="never started"))
    return sorted(missing, key=lambda job: job.job)


def missing_in(paths: list[Path]) -> list[MissingJob]:
    """The missing jobs of every sweep folder at or below ``paths``."""
    sweeps = sorted(
        {m.parent for path in paths for m in [path / "multirun.yaml", *path.rglob("multirun.yaml")] if m.is_file()}
    )
    return [job for sweep in sweeps for job in missing_jobs(sweep)]
