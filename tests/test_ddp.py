"""DDP gives the same method as one process: 2 CPU processes (gloo) vs 1 on the same global batch."""

import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests import ddp_worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def single_process(method: str):
    module = ddp_worker.build(method)
    view_a, view_b = ddp_worker.global_views()
    loss = module.compute_loss(view_a, view_b)["loss"]
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in module.named_parameters() if p.grad is not None}


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    """Each method's step run by the same 2 gloo processes; {method: [rank0 result, rank1 result]}."""
    methods = ["tsimcne", "simclr", "byol"]
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(ddp_worker.run, args=(2, free_port(), methods, str(out)), nprocs=2, join=True)
    return {m: [torch.load(out / m / f"rank{r}.pt", weights_only=True) for r in range(2)] for m in methods}


@pytest.mark.parametrize("method", ["tsimcne", "simclr", "byol"])
def test_two_processes_equal_one(method, two_process_results):
    ranks = two_process_results[method]
    loss, grads = single_process(method)
    if method == "byol":  # per-process mean over equal shards; their average is the global mean
        assert ranks[0]["losses"].mean().item() == pytest.approx(loss.item(), rel=1e-5)
    else:  # contrastive: every process computes the loss over the gathered global batch
        assert ranks[0]["losses"].tolist() == pytest.approx([loss.item()] * 2, rel=1e-5)
    for rank in ranks:
        assert rank["grads"].keys() == grads.keys()
        for name, grad in grads.items():
            assert torch.allclose(rank["grads"][name], grad, rtol=1e-4, atol=1e-6), name


def test_tsimcne_parameters_stay_identical_across_processes_through_stage_switches(two_process_results):
    result = two_process_results["tsimcne"][0]
    for stage, params in enumerate(result["params_after_stages"]):
        assert torch.equal(params[0], params[1]), f"replicas diverged in stage {stage + 1}"


def test_train_py_with_ddp_on_two_cpu_processes(tmp_path):
    """The real entry point: Lightning re-launches train.py once per process."""
    import json
    import subprocess
    import sys

    from tests.conftest import REPO, TINY

    cmd = [
        sys.executable, "train.py", *TINY, "trainer=ddp", "trainer.devices=2", "dataset.source.n_images=128",
        "schedule.epochs=[1,1,1]", f"hydra.run.dir={tmp_path}",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "entering stage3-2d" in done.stdout + done.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_images"] == 128 and "knn_accuracy" in metrics
    assert (tmp_path / "embedding.npz").is_file() and (tmp_path / "checkpoints" / "last.ckpt").is_file()
