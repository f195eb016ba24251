"""Faults during training: pre-emption and Ctrl-C save a resumable checkpoint; a non-finite loss stops the run.

Lightning turns Ctrl-C into a graceful shutdown and SIGTERM (a scheduler's pre-emption) into a
stop at the end of the current step; both then call ``on_exception``, where
:class:`SaveOnInterrupt` writes ``checkpoints/interrupted.ckpt``. While it saves, a second Ctrl-C
exits at once; afterwards the previous handler is back.

:class:`NonFiniteLossGuard` watches the loss without making the host wait for the GPU every
step: each step writes "finite or not" into a small device buffer, read every ``check_every``
steps (every step on the CPU, where reading costs nothing), so the report still names the
exact stage, epoch and step.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from medviz.errors import MedvizError
from medviz.training.signals import second_ctrl_c_exits


class NonFiniteLossError(MedvizError):
    """The loss became NaN or infinite; training stopped without saving the broken weights."""


class SaveOnInterrupt(L.Callback):
    """On Ctrl-C or SIGTERM, save ``<checkpoint_dir>/interrupted.ckpt`` (atomically) before exiting."""

    def __init__(self, checkpoint_dir: Path) -> None:
        self.path = Path(checkpoint_dir) / "interrupted.ckpt"
        self.saved: Path | None = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt | SIGTERMException):
            return
        with second_ctrl_c_exits():  # Lightning ignores further Ctrl-C; we let the next one exit
            trainer.save_checkpoint(self.path)
        self.saved = self.path
        what = "Ctrl-C" if isinstance(exception, KeyboardInterrupt) else "SIGTERM"
        print(
            f"\nmedviz: stopped by {what} at epoch {trainer.current_epoch}, step {trainer.global_step}; "
            f"saved {self.path}. Continue with the same command plus resume={self.path.parent.parent}",
            flush=True,
        )


class NonFiniteLossGuard(L.Callback):
    """Stop with :class:`NonFiniteLossError` naming stage, epoch and step when the loss is NaN or infinite.

    Args:
        check_every: read the device flags every this many steps (1 on the CPU; the GPU default
            matches the logging interval, where the host waits for the device anyway).
    """

    def __init__(self, check_every: int = 1) -> None:
        self.check_every = max(1, int(check_every))
        self._flags: torch.Tensor | None = None
        self._window: list[tuple[int, int, int]] = []  # (global step, epoch, batch) per flag slot

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        if self._flags is None or self._flags.device != loss.device:
            self._flags = torch.zeros(self.check_every, dtype=torch.bool, device=loss.device)
        self._flags[len(self._window)] = ~torch.isfinite(loss.detach())
        self._window.append((trainer.global_step, trainer.current_epoch, batch_idx))
        if len(self._window) == self.check_every:
            self.check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._window:
            self.check(trainer, pl_module)

    def check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        flags = self._flags[: len(self._window)].cpu()  # the one host read per window
        window, self._window = self._window, []
        if not flags.any():
            return
        step, epoch, batch = window[int(flags.int().argmax())]
        where = f"{pl_module.stage.name}, "
        folder = Path(trainer.default_root_dir) / "checkpoints"
        raise NonFiniteLossError(
            f"the loss became NaN or infinite at {where}epoch {epoch}, step {step} (batch {batch} of the epoch); "
            f"training stopped and the broken weights were not saved. The last good checkpoints are in {folder}. "
            "Lower the learning rate (method.base_lr), clip gradients (method.grad_clip=1.0) or check the "
            "images for NaN/inf, then resume with resume=<run folder> or start again."
        )
