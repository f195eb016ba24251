"""Reading a run's checkpoints safely, and checking they belong to the run that resumes them.

* :func:`check_identity` refuses to resume a checkpoint with another method or backbone than
  wrote it (:class:`~medviz.training.callbacks.RunState` stores both, and the RNG states).
* :func:`newest_checkpoint` reads the newest readable checkpoint of a run folder, falling back to
  older ones with a warning when the newest is corrupt. Everything is loaded with
  ``weights_only=True``: no pickled code from a checkpoint is ever executed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from medviz.errors import ConfigError

log = logging.getLogger("medviz")


def check_identity(path: Path, checkpoint: dict, method: str, backbone: str) -> None:
    """Refuse to resume ``checkpoint`` (loaded from ``path``) with another method or backbone than wrote it."""
    saved = checkpoint.get("medviz")
    if saved is None:
        raise ConfigError(f"{path} was not written by medviz's train.py; start a new run instead of resuming")
    for key, value in (("method", method), ("backbone", backbone)):
        if saved[key] != value:
            raise ConfigError(
                f"{path} was trained with {key}={saved[key]}, this run has {key}={value}: resume with "
                f"{key}={saved[key]}, or start a new run without resume"
            )


def _load(path: Path) -> dict | None:
    """``path`` loaded weights-only, or None when it is not a readable checkpoint with a state dict."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    return checkpoint if isinstance(checkpoint, dict) and "state_dict" in checkpoint else None


def newest_checkpoint(run_dir: Path) -> tuple[Path, dict]:
    """The newest readable checkpoint in ``run_dir/checkpoints`` and its contents (loaded once);
    a corrupt newest falls back to older ones, with a warning."""
    folder = run_dir / "checkpoints"
    candidates = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.is_dir() else []
    if not candidates:
        raise ConfigError(f"no checkpoint to resume from in {folder}: start the run without resume")
    for index, path in enumerate(candidates):
        checkpoint = _load(path)
        if checkpoint is not None:
            if index:
                skipped = ", ".join(p.name for p in candidates[:index])
                log.warning(f"checkpoint {skipped} is unreadable (corrupt or truncated); resuming from {path.name}")
            return path, checkpoint
    raise ConfigError(
        f"none of the {len(candidates)} checkpoints in {folder} can be read (corrupt or truncated): "
        "start the run again without resume"
    )
