"""``resume=``: which earlier run folder a command continues, and preparing that folder for it.

``resume=true`` takes the newest earlier run of the same name (``<stamp>[-n]_<run_name>`` next to
the new run's folder, see :mod:`medviz.training.run_folder`; in a sweep, the same job of the newest earlier
sweep), ``resume=<folder>`` that folder. The run then writes into the earlier folder and
continues from its newest readable checkpoint (see :func:`medviz.runs.checkpoints.newest_checkpoint`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from medviz.errors import ConfigError
from medviz.runs.checkpoints import check_identity, newest_checkpoint
from medviz.training.run_folder import folder_order, named_resume_folder

log = logging.getLogger("medviz")


def resume_folder(resume: object, run_dir: Path, run_name: str, in_multirun: bool) -> Path | None:
    """The run folder to continue, or None when ``resume`` is off (null/false)."""
    if resume is None or resume is False:
        return None
    if resume is True:
        if in_multirun:  # the same job of an earlier sweep: <sweeps>/<sweep folder>/<job folder>
            root = run_dir.parent.parent
            found = [(folder_order(p.parent.name), p) for p in root.glob(f"*/{run_dir.name}")]
        else:  # <outputs>/<stamp>[-n]_<run name>; names of other runs never match
            root = run_dir.parent
            found = [(folder_order(p.name, run_name), p) for p in root.iterdir() if p.is_dir()]
        earlier = [p for key, p in sorted((k, p) for k, p in found if k is not None)]
        earlier = [p for p in earlier if p != run_dir and (p / "checkpoints").is_dir()]
        if not earlier:
            raise ConfigError(
                f"resume=true found no earlier run of {run_name} with checkpoints in {root}; "
                "name the folder instead: resume=<run folder>"
            )
        return earlier[-1]
    return named_resume_folder(resume)


def prepare_resume(folder: Path, method: str, backbone: str) -> Path:
    """The checkpoint to continue from (written by the same method and backbone); the folder's metric
    log is set aside so the resumed log starts clean.

    Lightning's CSV logger rewrites ``metrics.csv`` when a new process logs to it, so the earlier
    rows are kept as ``logs/metrics-until-<checkpoint>.csv``.
    """
    checkpoint, contents = newest_checkpoint(folder)
    check_identity(checkpoint, contents, method, backbone)
    log_file = folder / "logs" / "metrics.csv"
    if log_file.is_file():
        kept = log_file.with_name(f"metrics-until-{checkpoint.stem}.csv")
        log_file.replace(kept)
        log.info(f"earlier metrics kept in {kept}")
    log.info(f"resuming {folder} from {checkpoint.name}")
    return checkpoint
