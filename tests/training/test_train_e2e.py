"""A short 3-stage fit through the real pipeline and through train.py itself."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from medviz.data.synthetic.synthblood import load_synthblood
from medviz.runs.rebuild import build_method
from medviz.runtime import peak_memory
from medviz.training.pipeline import train
from tests.helpers.config import REPO, TINY

# Starts training runs (often in processes of their own): scheduled first, see tests/conftest.py.
pytestmark = pytest.mark.trains


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from tests.helpers.config import compose_config

    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_config([*TINY, "schedule.epochs=[2,1,1]", "schedule.warmup_epochs=[1,0,0]"], run_dir=run_dir)
    metrics = train(cfg)
    return cfg, run_dir, metrics


def test_run_folder_has_every_output(finished_run):
    _, run_dir, metrics = finished_run
    for name in [
        "config.yaml",
        "embedding.npz",
        "metrics.json",
        "map.png",
        "logs/metrics.csv",
        "checkpoints/last.ckpt",
    ]:
        assert (run_dir / name).is_file(), name
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved == metrics
    assert 0 <= saved["knn_accuracy"] <= 1 and -1 <= saved["silhouette"] <= 1
    assert saved["epochs"] == 4 and saved["n_images"] == 96
    assert 100 < saved["peak_rss_mib"] < 24 * 1024  # PyTorch alone takes more than 100 MiB
    # Map snapshots during training land in the CSV log next to the loss.
    header = (run_dir / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {
        "train/loss",
        "train/alignment",
        "train/uniformity",
        "train/lr",
        "map/knn_accuracy",
    } <= set(header)


def _load_module(cfg, checkpoint):
    data = load_synthblood(**{k: v for k, v in cfg.dataset.source.items() if k != "_target_"})
    module = build_method(cfg, data.stats())
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    return module.eval(), data


def test_embedding_rows_are_in_dataset_order(finished_run):
    cfg, run_dir, _ = finished_run
    saved = np.load(run_dir / "embedding.npz")
    assert saved["embedding"].shape == (96, 2)
    assert np.array_equal(saved["index"], np.arange(96))
    module, data = _load_module(cfg, run_dir / "checkpoints" / "last.ckpt")
    assert np.array_equal(saved["labels"], data.labels)
    # Embed the images in reverse order, one at a time: row i of the file is image i.
    images = torch.from_numpy(data.images.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        rows = [module.embed(images[i : i + 1])[0].numpy() for i in range(95, -1, -8)]
    assert np.allclose(np.stack(rows), saved["embedding"][95::-8], atol=1e-4)


def test_checkpoint_from_every_stage_loads_into_a_fresh_model(finished_run):
    cfg, run_dir, _ = finished_run
    for epoch, stage, out_dim in [(0, 0, 128), (2, 1, 2), (3, 2, 2)]:
        module, data = _load_module(cfg, run_dir / "checkpoints" / f"epoch{epoch:04d}.ckpt")
        assert int(module.stage_index) == stage
        x = module.preprocess(torch.from_numpy(data.images[:3].transpose(0, 3, 1, 2).copy()))
        assert module(x).shape == (3, out_dim)


def test_train_py_multirun_from_the_command_line(tmp_path):
    """`python train.py -m ...` composes the quickstart preset and writes one folder per job."""
    cmd = [
        sys.executable,
        "train.py",
        "-m",
        "experiment=quickstart",
        *TINY,
        "seed=0,1",
        "schedule.epochs=[1,1,1]",
        "schedule.warmup_epochs=[0,0,0]",
        "eval.pixel_tsne=true",
        f"hydra.sweep.dir={tmp_path}",
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert [p.name for p in runs] == [
        "0_synthblood-tsimcne-default-seed0",
        "1_synthblood-tsimcne-default-seed1",
    ]
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        assert {
            "knn_accuracy",
            "silhouette",
            "pixel_tsne_knn_accuracy",
            "pixel_tsne_silhouette",
        } <= set(metrics)
    assert "map kNN accuracy" in done.stdout and "pixel t-SNE kNN accuracy" in done.stdout


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_feature_methods_save_backbone_features_and_a_tsne_map(method, tmp_path):
    from tests.helpers.config import compose_config

    cfg = compose_config([*TINY, f"method={method}", "schedule.epochs=2", "schedule.warmup_epochs=1"], run_dir=tmp_path)
    metrics = train(cfg)
    features = np.load(tmp_path / "features.npz")
    assert features["features"].shape == (96, 64)  # tinycnn width 8 -> 8 * 8 features
    assert np.array_equal(features["index"], np.arange(96))
    assert np.load(tmp_path / "embedding.npz")["embedding"].shape == (96, 2)
    assert "knn_accuracy" in metrics and (tmp_path / "map.png").is_file()


def test_peak_memory_follows_what_the_process_held():
    def resident_mib() -> float:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024

    now = resident_mib()
    held = np.ones(300 * 2**20 // 8)  # 300 MiB, every page touched
    assert peak_memory()["peak_rss_mib"] >= now + 290 and held.size
