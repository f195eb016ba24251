"""One process of the 2-process DDP checks in test_ddp.py (torch.multiprocessing target)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from medviz.augment import BatchAugment
from medviz.methods.byol import BYOL
from medviz.methods.simclr import SimCLR
from medviz.methods.stages import single_stage, three_stage
from medviz.methods.tsimcne import TSimCNE
from medviz.models.backbones import Backbone
from medviz.models.preprocess import Preprocess

GLOBAL_BATCH = 8


def no_bn_backbone() -> Backbone:
    """A BatchNorm-free backbone, so 1 and 2 processes compute exactly the same function."""
    body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
    return Backbone(body, 32)


def build(method: str) -> nn.Module:
    torch.manual_seed(0)
    shared = dict(
        augment=BatchAugment(), preprocess=Preprocess([0.5] * 3, [0.25] * 3), optimizer=torch.optim.SGD, lr=0.1
    )
    if method == "tsimcne":
        return TSimCNE(
            no_bn_backbone(), schedule=three_stage((1, 1, 1), warmup_epochs=(0, 0, 0)), hidden_dim=16, **shared
        )
    if method == "simclr":
        return SimCLR(no_bn_backbone(), schedule=single_stage(1), hidden_dim=16, out_dim=8, **shared)
    return BYOL(
        no_bn_backbone(),
        schedule=single_stage(1),
        proj_hidden=16,
        proj_dim=8,
        pred_hidden=16,
        batchnorm=False,
        **shared,
    )


def global_views() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(GLOBAL_BATCH, 3, 8, 8, generator=g), torch.randn(GLOBAL_BATCH, 3, 8, 8, generator=g)


class LossOf(nn.Module):
    """Routes the method's loss through DDP's forward, as Lightning's DDP wrapper does."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, view_a: torch.Tensor, view_b: torch.Tensor) -> torch.Tensor:
        return self.module.compute_loss(view_a, view_b)["loss"]


def flat_params(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def run(rank: int, world: int, port: int, methods: list[str], out_dir: str) -> None:
    """One process's share of a training step for each of ``methods``; results to out_dir/<method>/rank<r>.pt."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        for method in methods:
            result = one_step(method, rank, world)
            (Path(out_dir) / method).mkdir(parents=True, exist_ok=True)
            torch.save(result, Path(out_dir) / method / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def one_step(method: str, rank: int, world: int) -> dict:
    module = build(method)
    wrapped = DistributedDataParallel(LossOf(module), find_unused_parameters=True)
    view_a, view_b = global_views()
    share = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    loss = wrapped(view_a[share], view_b[share])
    loss.backward()
    losses = [torch.zeros(()) for _ in range(world)]
    dist.all_gather(losses, loss.detach())
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    result = {"losses": torch.stack(losses), "grads": grads}
    if method == "tsimcne":
        result["params_after_stages"] = stage_switch_params(module, wrapped, view_a[share], view_b[share], world)
    return result


def stage_switch_params(module, wrapped, view_a, view_b, world) -> list[torch.Tensor]:
    """Train a step in each stage (fresh optimiser per stage); gather every rank's parameters."""
    gathered = []
    for stage in range(3):
        module.enter_stage(stage)
        optimiser = torch.optim.SGD(module.trainable_parameters(), lr=0.1, momentum=0.9)
        for _ in range(2):
            optimiser.zero_grad()
            wrapped(view_a, view_b).backward()
            optimiser.step()
        params = [torch.zeros_like(flat_params(module)) for _ in range(world)]
        dist.all_gather(params, flat_params(module))
        gathered.append(torch.stack(params))
    return gathered
