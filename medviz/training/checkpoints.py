"""Checkpoints that survive crashes: atomic writes, RNG state for exact resumes, safe loading.

* :class:`AtomicCheckpointIO` writes each checkpoint to a temporary file in the same folder,
  flushes it to disk and renames it over the old one, so a crash (or a full disk) while saving
  never leaves the only checkpoint half-written.
* :func:`check_identity` refuses to resume a checkpoint with another method or backbone than
  wrote it (:class:`~medviz.training.callbacks.RunState` stores both, and the RNG states).
* :func:`newest_checkpoint` reads the newest readable checkpoint of a run folder, falling back to
  older ones with a warning when the newest is corrupt. Everything is loaded with
  ``weights_only=True``: no pickled code from a checkpoint is ever executed.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from medviz.errors import ConfigError, MedvizError
from medviz.training.signals import ctrl_c_deferred

log = logging.getLogger("medviz")


class CheckpointWriteError(MedvizError):
    """A checkpoint could not be written (full disk, no permission); the previous one is intact."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Torch checkpoints written atomically: temporary file, fsync, rename; Ctrl-C waits for the write."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with ctrl_c_deferred():
                with open(tmp, "wb") as file:
                    torch.save(checkpoint, file)
                    file.flush()
                    os.fsync(file.fileno())
                tmp.replace(path)
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            if not isinstance(err, OSError):
                raise
            reason = "the disk is full" if err.errno == errno.ENOSPC else err.strerror or str(err)
            raise CheckpointWriteError(
                f"could not write checkpoint {path}: {reason}. The previous checkpoints in {path.parent} are "
                "intact; free space (or point hydra.run.dir to another disk) and resume with resume=<run folder>."
            ) from err


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
