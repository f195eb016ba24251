"""Lightning callbacks: the stage schedule of t-SimCNE."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities import rank_zero_info


class StageSchedule(L.Callback):
    """Moves a staged module (``schedule``, ``stage_index``, ``enter_stage``) through its stages.

    At the start of each epoch it looks up the epoch's stage; on a change it switches the module
    and asks the strategy to rebuild optimisers and lr schedulers, so each stage starts with a
    fresh optimiser over exactly the parameters it trains. Every process runs the same switch at
    the same epoch, so DDP replicas stay identical.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        target = pl_module.schedule.stage_at(trainer.current_epoch)
        if target == int(pl_module.stage_index):
            return
        pl_module.enter_stage(target)
        trainer.strategy.setup_optimizers(trainer)
        stage = pl_module.stage
        rank_zero_info(
            f"[medviz] epoch {trainer.current_epoch}: entering {stage.name} "
            f"({stage.epochs} epochs, lr {pl_module.lr * stage.lr_scale:.3g}, "
            f"trains {stage.trains})"
        )
