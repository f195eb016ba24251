"""Every run owns its folder: a unique name, created atomically before Hydra logs into it.

Hydra names a run folder from the time in seconds (``outputs/<date>_<time>_<run name>``), so two
runs started in the same second would share one folder and write into each other's files. The
resolvers here create the folder themselves with ``os.mkdir`` (which fails when the folder
exists, also across processes and on shared file systems) and add ``-2``, ``-3``, ... to the time
stamp until the name is free: ``outputs/2026-12-02_10-00-00-2_synthblood-...``. The counter sits
before the run name, so ``resume=true`` still finds the runs of one name (:func:`newest_run`).

A folder given by the user (``run_dir=<folder>``) is created and checked for writing here too,
before Hydra starts its log, so a read-only place is one clear line instead of a traceback.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from medviz.errors import ConfigError

STAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"
_STAMP = r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}"
# One answer per process and request: Hydra resolves its run folder more than once.
_created: dict[tuple[str, str], Path] = {}
_start_stamp: str | None = None


def _stamp() -> str:
    """The time this process first asked for a folder (one stamp for all of its folders)."""
    global _start_stamp
    if _start_stamp is None:
        _start_stamp = time.strftime(STAMP_FORMAT)
    return _start_stamp


def _fail(message: str) -> None:
    # Raised inside Hydra's config resolution, an exception would come out wrapped in a traceback;
    # the message alone says what to do.
    print(f"medviz: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def claim_new_folder(parent: Path, suffix: str = "") -> Path:
    """Create ``parent/<stamp>[-n]<suffix>`` atomically and return it; ``n`` counts up from 2 while taken."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = _stamp()
    for attempt in range(1, 10_000):
        folder = parent / (f"{stamp}{suffix}" if attempt == 1 else f"{stamp}-{attempt}{suffix}")
        try:
            os.mkdir(folder)
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run folder name under {parent} for {stamp}{suffix}")


def run_folder(run_dir: str | None, parent: str, run_name: str) -> str:
    """Resolver ``medviz_run_folder``: ``run_dir`` when given, else a new unique folder under ``parent``."""
    key = (str(run_dir), f"{parent}/{run_name}")
    if key not in _created:
        try:
            if run_dir:
                folder = Path(run_dir).expanduser()
                folder.mkdir(parents=True, exist_ok=True)
                probe = folder / f".medviz-write-check-{os.getpid()}"
                probe.touch()
                probe.unlink()
            else:
                folder = claim_new_folder(Path(parent), f"_{run_name}")
        except OSError as err:
            where = run_dir or parent
            _fail(
                f"cannot write the run folder under {where} ({type(err).__name__}: {err.strerror or err}). "
                "Choose a writable folder: run_dir=<folder> (or run from a folder you can write to)"
            )
        _created[key] = folder
    return str(_created[key])


def sweep_folder(parent: str) -> str:
    """Resolver ``medviz_sweep_folder``: a new unique sweep folder ``parent/<stamp>[-n]``."""
    key = ("sweep", parent)
    if key not in _created:
        try:
            _created[key] = claim_new_folder(Path(parent))
        except OSError as err:
            _fail(
                f"cannot create a sweep folder under {parent} ({type(err).__name__}: {err.strerror or err}). "
                "Choose a writable one: hydra.sweep.dir=<folder>"
            )
    return str(_created[key])


def first_process() -> bool:
    """Whether this process is the run's first (global rank 0), as its launcher says before
    Lightning starts: ``RANK`` (torchrun), ``SLURM_PROCID`` (SLURM), else ``NODE_RANK`` and
    ``LOCAL_RANK`` (nodes started by hand, and the processes Lightning starts on a node)."""
    for name in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if name in os.environ:
            return int(os.environ[name]) == 0
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0")))
    return node == 0 and int(os.environ.get("LOCAL_RANK", "0")) == 0


def hydra_subdir() -> str | None:
    """Resolver ``medviz_hydra_subdir``: Hydra's record of the run (``.hydra/``) from the first process
    only; on other nodes of a multi-node run, which share the run folder, nothing."""
    return ".hydra" if first_process() else None


def register_resolvers() -> None:
    """Make ``${medviz_run_folder:...}``, ``${medviz_sweep_folder:...}`` and ``${medviz_hydra_subdir:}``
    known (``conf/train.yaml``)."""
    # use_cache: the cache travels with the config to a sweep's jobs (also to other processes), so
    # every job of a sweep sees the one folder that was created.
    for name, resolver in (("medviz_run_folder", run_folder), ("medviz_sweep_folder", sweep_folder)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver, use_cache=True)
    if not OmegaConf.has_resolver("medviz_hydra_subdir"):
        OmegaConf.register_new_resolver("medviz_hydra_subdir", hydra_subdir)
    if not OmegaConf.has_resolver("medviz_data_name"):
        OmegaConf.register_new_resolver("medviz_data_name", data_name)


def data_name(kind: str, path: object) -> str:
    """``dataset.name`` of data read from a path (``conf/dataset/folder.yaml``, ``arrays.yaml``): the kind
    and the folder's or file's own name, ``folder-cells`` -- so run folders and ``resume=true`` tell
    one folder's runs from another's. Characters a folder name cannot safely hold become ``_``."""
    where = Path(str(path)).expanduser()
    own = where.name if kind == "folder" else where.stem
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", own).strip("._-")
    return f"{kind}-{safe}" if safe else kind


def folder_order(name: str, run_name: str | None = None) -> tuple[str, int] | None:
    """(stamp, counter) of a folder this module named, for sorting by age; None for any other name.

    ``run_name`` None matches sweep folders (``<stamp>[-n]``), otherwise run folders of that name.
    """
    tail = "" if run_name is None else "_" + re.escape(run_name)
    match = re.fullmatch(rf"({_STAMP})(?:-(\d+))?{tail}", name)
    if match is None:
        return None
    return match.group(1), int(match.group(2) or 1)


def holds_a_run(folder: Path) -> bool:
    """Whether a training run already wrote into ``folder`` (its config, checkpoints or results)."""
    markers = ("config.yaml", "checkpoints", "embedding.npz", "metrics.json")
    return any((folder / marker).exists() for marker in markers)


def named_resume_folder(resume: object) -> Path | None:
    """The folder ``resume=<folder>`` names, checked to exist; None for ``resume`` null/true/false.

    Light on purpose (no PyTorch): train.py calls it before importing the training code, so a
    mistyped folder is reported at once.
    """
    if resume is None or isinstance(resume, bool):
        return None
    folder = Path(str(resume)).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"resume={resume}: there is no such run folder; use resume=<run folder> or resume=true")
    return folder
