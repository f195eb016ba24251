"""Checkpoints that survive crashes: :class:`AtomicCheckpointIO` writes each checkpoint to a
temporary file in the same folder, flushes it to disk and renames it over the old one, so a crash
(or a full disk) while saving never leaves the only checkpoint half-written.

Reading them back (safely, weights only) is :mod:`medviz.runs.checkpoints`.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from medviz.errors import MedvizError
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
