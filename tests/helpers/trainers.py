"""A bare Lightning Trainer for tests that drive a method directly."""

from __future__ import annotations

import lightning as L


def plain_trainer(max_epochs: int, callbacks: list, **extra) -> L.Trainer:
    """A bare Lightning Trainer on the CPU: no logger, checkpoints, progress bar or summary."""
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **extra,
    )
