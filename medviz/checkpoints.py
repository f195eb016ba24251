"""Checkpoints that survive crashes: atomic writes, RNG state for exact resumes, safe loading.

* :class:`AtomicCheckpointIO` writes each checkpoint to a temporary file in the same folder,
  flushes it to disk and renames it over the old one, so a crash (or a full disk) while saving
  never leaves the only checkpoint half-written.
* :class:`RunState` stores what Lightning does not: the random number generators (augmentations
  and data order continue exactly where they stopped) and which method and backbone wrote the
  checkpoint (resuming with another one is refused with a clear message).
* :func:`newest_checkpoint` reads the newest readable checkpoint of a run folder, falling back to
  older ones with a warning when the newest is corrupt. Everything is loaded with
  ``weights_only=True``: no pickled code from a checkpoint is ever executed.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from medviz.errors import ConfigError, MedvizError

log = logging.getLogger("medviz")


class CheckpointWriteError(MedvizError):
    """A checkpoint could not be written (full disk, no permission); the previous one is intact."""


@contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Let a Ctrl-C that arrives inside the block take effect after it (a second one exits at once).

    A checkpoint write is never cut in the middle; outside the main thread signals cannot be
    handled, and nothing changes. After a first Ctrl-C the handler is marked ``exits_at_once``
    (see :mod:`medviz.faults`) and is left alone: the user asked twice.
    """
    current = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or getattr(current, "exits_at_once", False):
        yield
        return
    received: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        if received:
            os._exit(128 + signum)
        received.append(signum)

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(received[0], None)  # Python's default handler raises KeyboardInterrupt here


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


def _rng_state() -> dict[str, Any]:
    """Every generator a run draws from, as tensors and plain values (loadable with weights_only)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached": cached,
        },
        "python": {"version": version, "state": list(state), "gauss": gauss},
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["cached"])
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))


class RunState(L.Callback):
    """Saves the RNG states and the run's identity (method, backbone) into every checkpoint, and
    restores the RNG states when a run resumes."""

    def __init__(self, method: str, backbone: str) -> None:
        self.identity = {"method": method, "backbone": backbone}
        self._pending_rng: dict | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint["medviz"] = {**self.identity, "rng": _rng_state()}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._pending_rng = checkpoint["medviz"]["rng"]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Restored as late as possible: set-up after loading (optimisers, loaders) must not shift it.
        if self._pending_rng is not None:
            _set_rng_state(self._pending_rng)
            self._pending_rng = None


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
