"""One "node" of the two-node check in test_ddp.py: one Lightning DDP step with ``num_nodes=2``.

Each node is one process, started on its own with ``NODE_RANK`` (as a cluster launcher starts
it); each takes its share of the same global batch of pre-made views, and records the loss and
the gradients after DDP has averaged them.

    MASTER_ADDR=127.0.0.1 MASTER_PORT=<port> NODE_RANK=<0|1> python -m tests.helpers.two_node_worker <out folder>
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from tests.helpers import ddp_worker


class OneStep(L.LightningModule):
    """t-SimCNE's loss on this process's share of the global batch, through Lightning's DDP."""

    def __init__(self, out_dir: Path) -> None:
        super().__init__()
        self.method = ddp_worker.build("tsimcne")
        self.out_dir = out_dir
        self.step_loss = torch.zeros(())

    def training_step(self, batch, batch_index):
        view_a, view_b = ddp_worker.global_views()
        size = ddp_worker.GLOBAL_BATCH // self.trainer.world_size
        share = slice(self.global_rank * size, (self.global_rank + 1) * size)
        loss = self.method.compute_loss(view_a[share], view_b[share])["loss"]
        self.step_loss = loss.detach()
        return loss

    def on_after_backward(self) -> None:
        grads = {n: p.grad.clone() for n, p in self.method.named_parameters() if p.grad is not None}
        record = {
            "loss": self.step_loss,
            "grads": grads,
            "node": self.trainer.node_rank,
            "world": self.trainer.world_size,
        }
        torch.save(record, self.out_dir / f"rank{self.global_rank}.pt")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(list(range(self.trainer.world_size)), batch_size=1)  # one step per process


if __name__ == "__main__":
    torch.set_num_threads(1)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        num_nodes=2,
        strategy="ddp_find_unused_parameters_true",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(OneStep(Path(sys.argv[1])))
