"""Interruptions: Ctrl-C and SIGTERM leave a resumable checkpoint, and nothing reaches a later run.

Lightning swaps in its own SIGTERM handler for the length of a fit and restores every handler
when the fit ends; medviz's Ctrl-C handlers last only as long as the write they guard. The first
tests signal ``train.py`` runs in their own process; the last ones send real signals to the test
process itself and then train again in the same process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from medviz.data.datamodule import ArrayDataModule
from medviz.data.synthetic.synthblood import load_synthblood
from medviz.runs.rebuild import build_method
from medviz.training.callbacks import SaveOnInterrupt
from tests.helpers.config import REPO, TINY, compose_config
from tests.helpers.resume_runs import as_from_a_terminal, embedding, run, start, wait_for
from tests.helpers.signals import WATCHED_SIGNALS
from tests.helpers.trainers import plain_trainer

# Starts training runs (often in processes of their own): scheduled first, see tests/conftest.py.
pytestmark = pytest.mark.trains


class Interrupt(L.Callback):
    """At the second step, either send this process a signal or raise what Ctrl-C raises."""

    def __init__(self, how: str) -> None:
        self.how = how

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step != 2:
            return
        if self.how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            raise KeyboardInterrupt


def fit(tmp_path, *callbacks: L.Callback) -> L.Trainer:
    cfg = compose_config([*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]"])
    data = load_synthblood(n_images=96, seed=0)
    trainer = plain_trainer(3, [SaveOnInterrupt(tmp_path / "checkpoints"), *callbacks], default_root_dir=str(tmp_path))
    trainer.fit(build_method(cfg, data.stats()), datamodule=ArrayDataModule(data, batch_size=32))
    return trainer


@pytest.mark.parametrize("memory_mapped", [False, True])
def test_a_resume_from_the_middle_of_an_epoch_ends_bit_for_bit_as_an_uninterrupted_run(tmp_path, memory_mapped):
    """Lightning counts on from the batches it had trained; the loader must go on from there too
    (it started the epoch's order again, and the map differed from an uninterrupted run's)."""
    from medviz.training.callbacks import RunState

    cfg = compose_config([*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]"])
    data = load_synthblood(n_images=96, seed=0)
    if memory_mapped:  # the DataLoader path of datasets larger than memory
        np.save(tmp_path / "images.npy", data.images)
        data = replace(data, images=np.load(tmp_path / "images.npy", mmap_mode="r"))

    def run(folder, *callbacks, resume_from=None):
        L.seed_everything(0)
        module = build_method(cfg, data.stats())
        state = RunState(method="tsimcne", backbone="tinycnn")
        trainer = plain_trainer(
            3, [state, SaveOnInterrupt(folder / "checkpoints"), *callbacks], default_root_dir=str(folder)
        )
        datamodule = ArrayDataModule(data, batch_size=32, on_device=not memory_mapped)
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        return module

    whole = run(tmp_path / "whole")
    with pytest.raises(SystemExit):
        run(tmp_path / "cut", Interrupt("ctrl-c"))  # at the second of the epoch's three steps
    resumed = run(tmp_path / "again", resume_from=str(tmp_path / "cut" / "checkpoints" / "interrupted.ckpt"))
    for (name, expected), found in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(expected, found), name


@pytest.mark.parametrize(("how", "raised"), [("sigterm", SIGTERMException), ("ctrl-c", SystemExit)])
def test_a_signal_stops_only_its_own_fit_and_leaves_no_handler_behind(how, raised, tmp_path, capsys):
    before = {sig: signal.getsignal(sig) for sig in WATCHED_SIGNALS}
    with pytest.raises(raised):
        fit(tmp_path / "interrupted", Interrupt(how))
    assert (tmp_path / "interrupted" / "checkpoints" / "interrupted.ckpt").is_file()
    assert "stopped by" in capsys.readouterr().out
    assert {sig: signal.getsignal(sig) for sig in WATCHED_SIGNALS} == before
    # The next fit in the same process trains to its end: no stop request carries over.
    after = fit(tmp_path / "next")
    assert after.current_epoch == 3 and not after.received_sigterm and not after.interrupted


@pytest.mark.parametrize(("sig", "code", "said"), [(signal.SIGTERM, 128 + 15, "SIGTERM"), (signal.SIGINT, 1, "Ctrl-C")])
def test_sigterm_and_ctrl_c_save_a_resumable_checkpoint(sig, code, said, tmp_path):
    run_dir = tmp_path / "run"
    process = start(run_dir)
    wait_for(run_dir / "checkpoints" / "epoch0000.ckpt", process)
    process.send_signal(sig)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == code, output[-3000:]
    assert f"stopped by {said}" in output and f"resume={run_dir}" in output
    interrupted = run_dir / "checkpoints" / "interrupted.ckpt"
    assert "state_dict" in torch.load(interrupted, map_location="cpu", weights_only=True)

    run(tmp_path / "resume-command", f"resume={run_dir}")
    assert embedding(run_dir).shape == (512, 2)


CTRL_C_TWICE = """
import os, signal, time
from medviz.training.signals import ctrl_c_deferred
with ctrl_c_deferred():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)
    print("first Ctrl-C waited", flush=True)
    {second}
    time.sleep(0.2)
    print("block finished", flush=True)
"""


@pytest.mark.parametrize("twice", [False, True])
def test_ctrl_c_waits_for_a_checkpoint_write_and_a_second_one_exits_at_once(twice):
    second = "os.kill(os.getpid(), signal.SIGINT)" if twice else "pass"
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_TWICE.format(second=second)],
        cwd=REPO,
        capture_output=True,
        text=True,
        preexec_fn=as_from_a_terminal,
    )
    assert "first Ctrl-C waited" in done.stdout
    if twice:
        assert done.returncode == 128 + signal.SIGINT and "block finished" not in done.stdout
    else:  # the interrupt takes effect when the block ends
        assert "block finished" in done.stdout and "KeyboardInterrupt" in done.stderr
