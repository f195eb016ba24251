"""What a checkpoint must hold beyond Lightning's own state, so a resumed run continues exactly."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

from medviz.data.device_batches import EpochOrder


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
        _continue_the_epoch(trainer)


def _continue_the_epoch(trainer: L.Trainer) -> None:
    """After a resume from the middle of an epoch (Ctrl-C, SIGTERM), serve that epoch's images from
    where it stopped: Lightning counts on from the batches it had trained, but a loader that is not
    told would start the epoch's order again, and the run would differ from an uninterrupted one."""
    done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
    if not 0 < done < trainer.num_training_batches:  # a fresh start, or an epoch-end checkpoint
        return
    loader = trainer.train_dataloader
    order, batch = getattr(loader, "sampler", None), getattr(loader, "batch_size", None)
    if isinstance(order, EpochOrder) and batch:
        order.skip_first(trainer.current_epoch, done * int(batch))
