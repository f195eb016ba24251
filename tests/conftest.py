"""Fixtures for every test: offline W&B, one thread per test worker, the tiny config, signal hygiene.

Helpers that tests import live in :mod:`tests.helpers`; nothing imports this file.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from tests.helpers.config import TINY, compose_config
from tests.helpers.signals import WATCHED_SIGNALS

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: one thread each (and in the runs they start), since
    # more threads than cores make PyTorch's CPU kernels many times slower, not faster.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture
def tiny_cfg(tmp_path: Path):
    def make(*extra: str) -> DictConfig:
        return compose_config([*TINY, *extra], run_dir=tmp_path / "run")

    return make


@pytest.fixture(autouse=True)
def no_signal_handler_outlives_its_test():
    """Every test leaves the process's signal handlers as it found them.

    A handler left behind (by medviz, Lightning or a test) would decide how a later, unrelated
    test reacts to a signal; such a test fails here, naming the signal, and the handler is reset.
    """
    before = {sig: signal.getsignal(sig) for sig in WATCHED_SIGNALS}
    yield
    changed = [sig.name for sig in WATCHED_SIGNALS if signal.getsignal(sig) is not before[sig]]
    for sig in WATCHED_SIGNALS:
        signal.signal(sig, before[sig])
    assert not changed, f"the test left its own handler for {', '.join(changed)} installed"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``trains`` (they start training runs, often in processes of their own) go first.

    With one test worker per core (`make test`), starting the longest tests first keeps one of them
    from running alone at the end while the other worker idles. A stable sort: each file's order stays.
    """
    items.sort(key=lambda item: item.get_closest_marker("trains") is None)
