"""DDP gives the same method as one process: 2 CPU processes (gloo) vs 1 on the same global batch."""

import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.helpers import ddp_worker

# Starts training runs (often in processes of their own): scheduled first, see tests/conftest.py.
pytestmark = pytest.mark.trains


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_nodes(command: list[str]) -> list[str]:
    """``command`` started twice from the repository, as nodes 0 and 1 of one run (NODE_RANK, as a
    cluster launcher sets it); both must succeed. Returns each node's output."""
    import os
    import subprocess

    from tests.helpers.config import REPO

    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    nodes = [
        subprocess.Popen(
            command,
            cwd=REPO,
            env={**env, "NODE_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    return outputs


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


def test_two_nodes_train_the_same_run_as_two_processes_on_one_node_and_write_it_once(tmp_path):
    """Nodes started by hand (node ranks 0 and 1, one process each, gloo), as SLURM starts them:
    the same map as 2 processes on one node (which Lightning starts by re-launching train.py), one
    run folder, written by the first process."""
    import json
    import subprocess
    import sys

    import numpy as np

    from tests.helpers.config import REPO, TINY

    common = [
        sys.executable,
        "train.py",
        *TINY,
        "trainer=ddp",
        "dataset.source.n_images=128",
        "schedule.epochs=[1,1,1]",
    ]
    one_node = subprocess.run(
        [*common, "trainer.devices=2", f"run_dir={tmp_path / 'one'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one_node.returncode == 0, one_node.stderr[-3000:]
    assert "entering stage3-2d" in one_node.stdout + one_node.stderr  # Lightning re-launched train.py
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert metrics["n_images"] == 128 and "knn_accuracy" in metrics
    assert (tmp_path / "one" / "checkpoints" / "last.ckpt").is_file()
    outputs = run_two_nodes([*common, "trainer.devices=1", "trainer.num_nodes=2", f"run_dir={tmp_path / 'two'}"])
    assert "run folder:" in outputs[0] and "run folder:" not in outputs[1]  # node 1 trains, node 0 reports
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]
    assert (tmp_path / "two" / "config.yaml").is_file() and (tmp_path / "two" / ".hydra").is_dir()
    maps = [np.load(tmp_path / name / "embedding.npz")["embedding"] for name in ("one", "two")]
    np.testing.assert_allclose(maps[0], maps[1], rtol=1e-5, atol=1e-5)


def test_several_nodes_need_one_shared_run_folder():
    from medviz.errors import ConfigError
    from medviz.training.config_checks import check_config
    from tests.helpers.config import compose_config

    with pytest.raises(ConfigError, match=r"trainer.num_nodes=2: every node must write into one run folder"):
        check_config(compose_config(["trainer=ddp", "trainer.num_nodes=2"]))


def test_two_nodes_take_one_step_with_the_loss_and_gradients_of_one_process(tmp_path):
    """Node ranks 0 and 1 started apart (gloo, one process each, Lightning's num_nodes=2) on one global batch."""
    import sys

    run_two_nodes([sys.executable, "-m", "tests.helpers.two_node_worker", str(tmp_path)])
    loss, grads = single_process("tsimcne")
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert (result["node"], result["world"]) == (rank, 2)
        assert result["loss"].item() == pytest.approx(loss.item(), rel=1e-5)  # over the gathered global batch
        assert result["grads"].keys() == grads.keys()
        for name, grad in grads.items():
            assert torch.allclose(result["grads"][name], grad, rtol=1e-4, atol=1e-6), name
