"""``resume=``: which earlier run folder a command continues, and preparing that folder for it.

``resume=true`` takes the newest earlier run of the same name (``<stamp>[-n]_<run_name>`` next to
the new run's folder, see :mod:`medviz.training.run_folder`; in a sweep, the same job of the newest earlier
sweep), ``resume=<folder>`` that folder. The run then writes into the earlier folder and
continues from its newest readable checkpoint (see :func:`medviz.runs.checkpoints.newest_checkpoint`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

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


#: Dataset settings that decide how fast images are read, not which: a resume may change them.
_READING_SPEED_KEYS = frozenset({"ingest_workers", "ingest_check", "workers", "check"})


def _flat(node: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(node, dict):
        return {prefix: node}
    found: dict[str, object] = {}
    for key, value in node.items():
        if key in _READING_SPEED_KEYS or key in ("ingest", "name"):  # ingest repeats the source; names are labels
            continue
        found.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return found


def check_same_data(folder: Path, dataset: dict) -> None:
    """Refuse to resume ``folder`` with other data than it trained on: another dataset, path, size,
    subset, normalisation ... (``dataset``: this command's resolved ``dataset`` settings).

    Compared with the folder's ``config.yaml`` (its identity); settings an older release did not
    record are not compared, and neither are those that only change reading speed.
    """
    config = folder / "config.yaml"
    if not config.is_file():
        return  # restored from this command's settings, with a warning (medviz.training.pipeline)
    try:
        saved = (yaml.safe_load(config.read_text()) or {}).get("dataset")
    except yaml.YAMLError as err:
        raise ConfigError(f"{config} cannot be read ({err}): resume cannot tell which data the run used") from err
    if not isinstance(saved, dict):
        return
    there, here = _flat(saved), _flat(dataset)
    differ = [key for key in there if key in here and there[key] != here[key]]
    if differ:
        said = "; ".join(f"dataset.{key} was {there[key]!r}, now {here[key]!r}" for key in differ[:4])
        more = f" (and {len(differ) - 4} more)" if len(differ) > 4 else ""
        raise ConfigError(
            f"{folder} was trained on other data than this command's: {said}{more}. Resume it with its own "
            "dataset settings (see its config.yaml), or start a new run without resume"
        )
