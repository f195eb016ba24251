"""evaluate.py: tables from run folders, t-SNE baselines, Figure 2, linear evaluation of a run."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from medviz.data.synthetic.synthblood import load_synthblood
from medviz.evaluation.imagenet_features import preprocess_imagenet
from medviz.evaluation.map_metrics import pixel_tsne_metrics
from medviz.evaluation.pipeline import evaluate_run, figure2, run_baseline, write_tables
from medviz.evaluation.tables import aggregate, find_run_dirs, load_run
from tests.helpers.config import REPO


def fake_run(root, method, aug, dataset, seed, **metrics):
    run = root / f"{method}-{aug}-{dataset}-{seed}"
    run.mkdir(parents=True)
    config = {"method": {"name": method}, "aug": {"name": aug}, "dataset": {"name": dataset}, "seed": seed}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture
def sweep(tmp_path):
    values = {"default": [0.80, 0.82, 0.84], "rot90": [0.90, 0.91, 0.92], "randrot": [0.88, 0.89, 0.90]}
    for aug, knns in values.items():
        for seed, knn in enumerate(knns):
            fake_run(tmp_path / "sweep", "tsimcne", aug, "bloodmnist", seed, knn_accuracy=knn, silhouette=knn / 2)
    fake_run(tmp_path / "sweep", "simclr", "default", "bloodmnist", 0, knn_accuracy=0.95, silhouette=0.3)
    return tmp_path / "sweep"


def test_table_means_stds_and_bold(sweep, tmp_path):
    runs = [load_run(d) for d in find_run_dirs([sweep])]
    assert len(runs) == 10
    table = aggregate(runs, "knn_accuracy")
    cell = table[("tsimcne", "rot90")]["bloodmnist"]
    assert cell.mean == pytest.approx(0.91) and cell.std == pytest.approx(0.01)
    assert table[("simclr", "default")]["bloodmnist"].std == 0.0
    (md,) = write_tables(find_run_dirs([sweep]), [2], tmp_path, with_paper=True)
    text = md.read_text()
    assert "| tsimcne | rot90 | **91.0 ± 1.0** / 93.0 ± 0.3 |" in text  # ours (bold: best t-SimCNE) / paper
    assert "| tsimcne | default | 82.0 ± 2.0 / 90.4 ± 0.3 |" in text
    assert "| simclr | default | 95.0 / 94.0 ± 0.1 |" in text  # a single run has no std, never bold
    csv_lines = (tmp_path / "table2_knn.csv").read_text().splitlines()
    assert csv_lines[0] == "method,augmentation,dataset,mean,std,n,n_missing,paper_mean,paper_std"
    assert len(csv_lines) == 5


def test_imagenet_preprocessing_shape_and_normalisation():
    import torch

    images = torch.full((2, 3, 28, 28), 255, dtype=torch.uint8)
    x = preprocess_imagenet(images)
    assert x.shape == (2, 3, 224, 224)
    assert torch.allclose(
        x[0, :, 0, 0], (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    )


@pytest.mark.parametrize("name", ["pixels", "resnet18"])
def test_baselines_end_to_end_on_synthblood(name, tmp_path):
    data = load_synthblood(120, seed=0)
    weights = {"resnet18": "random", "resnet152": "random"}  # same code path as ImageNet weights
    run = run_baseline(name, data, tmp_path, seed=0, k=15, weights=weights)
    result = load_run(run)
    assert (result.method, result.aug, result.dataset) == ("tsne", name, "synthblood")
    assert 0 <= result.metrics["knn_accuracy"] <= 1
    assert np.load(run / "embedding.npz")["embedding"].shape == (120, 2) and (run / "map.png").is_file()


def test_a_baseline_on_a_stratified_subset_says_which_rows(tmp_path):
    data = load_synthblood(160, seed=0)
    run = run_baseline("pixels", data, tmp_path, seed=0, k=5, weights={}, max_images=40)
    saved = np.load(run / "embedding.npz")
    assert saved["embedding"].shape == (40, 2) and load_run(run).metrics["n_images"] == 40
    np.testing.assert_array_equal(saved["labels"], data.labels[saved["index"]])
    share = np.bincount(data.labels) * 40 / 160
    assert np.abs(np.bincount(saved["labels"], minlength=len(share)) - share).max() < 1  # each class its share


def test_pixel_tsne_of_a_run_can_be_capped(tmp_path):
    data = load_synthblood(160, seed=0)
    capped = pixel_tsne_metrics(data, k=5, seed=0, max_images=40)
    assert capped["pixel_tsne_n_images"] == 40 and 0 <= capped["pixel_tsne_knn_accuracy"] <= 1
    assert pixel_tsne_metrics(data, k=5, seed=0)["pixel_tsne_n_images"] == 160


def test_linear_probe_added_to_a_feature_run(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(90) % 3
    run = fake_run(tmp_path, "simclr", "default", "bloodmnist", 0)
    np.savez(run / "embedding.npz", embedding=rng.normal(size=(90, 2)), labels=labels, index=np.arange(90))
    np.savez(run / "features.npz", features=rng.normal(size=(90, 4)) + 3 * labels[:, None], labels=labels)
    np.save(run / "split.npy", np.array(["train"] * 60 + ["val"] * 10 + ["test"] * 20))
    metrics = evaluate_run(run, k=15, seed=0)
    assert metrics["linear_accuracy"] > 0.7 and "knn_accuracy" in metrics
    assert json.loads((run / "metrics.json").read_text()) == metrics


def test_figure2_from_four_runs(tmp_path):
    labels = np.array([0] * 50 + [1] * 50 + [2])  # class 2 is small: drawn black as "OTH"
    panels = {}
    for key in ("pixels", "resnet", "default", "rotations"):
        run = fake_run(tmp_path, key, "x", "d", 0, knn_accuracy=0.5, silhouette=0.1)
        coords = np.random.default_rng(0).normal(size=(101, 2))
        np.savez(run / "embedding.npz", embedding=coords, labels=labels, class_names=np.array(["a", "b", "c"]))
        panels[key] = str(run)
    path = figure2(panels, tmp_path, small_class_fraction=0.02)
    assert path.is_file() and path.stat().st_size > 10_000


def test_evaluate_py_writes_tables_from_a_sweep_folder(sweep, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "evaluate.py", f"runs=[{sweep}]", "tables=[2,3]", f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "table2_knn.md").is_file() and (out / "table3_silhouette.csv").is_file()
    assert "Table 3: silhouette" in done.stdout


def test_imagenet_weights_from_a_local_file_and_resnet152_width(tmp_path):
    import torch
    from torchvision import models

    from medviz.evaluation.imagenet_features import imagenet_features

    torch.manual_seed(0)
    reference = models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 3), dtype=np.uint8)
    from_file = imagenet_features(images, "resnet18", weights=str(tmp_path / "resnet18.pth"))
    reference.fc = torch.nn.Identity()
    with torch.no_grad():
        expected = reference.eval()(preprocess_imagenet(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())))
    assert from_file.shape == (3, 512) and np.allclose(from_file, expected.numpy(), atol=1e-5)
    assert imagenet_features(images[:1], "resnet152", weights="random").shape == (1, 2048)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    from medviz.errors import DataError
    from medviz.evaluation.imagenet_features import build_resnet

    with pytest.raises(DataError, match="weights file .*nothere.pth not found"):
        build_resnet("resnet18", str(tmp_path / "nothere.pth"))


def test_a_batch_against_biology_table_for_runs_that_measured_batches(sweep, tmp_path):
    from medviz.evaluation.tables import write_batch_table

    batch = {"batch_knn_chance": 0.5, "graph_connectivity": 1.0, "batch_asw": 0.9, "batch_kbet": 0.8, "clisi": 1.0}
    for seed, (ilisi, knn) in enumerate([(0.70, 0.60), (0.80, 0.55)]):
        fake_run(
            sweep,
            "tsimcne",
            "default",
            "synthblood",
            seed,
            knn_accuracy=0.9,
            silhouette=0.3,
            batch_ilisi=ilisi,
            batch_knn_accuracy=knn,
            scib_total=0.8,
            **batch,
        )
    runs = [load_run(d) for d in find_run_dirs([sweep])]
    path = write_batch_table(runs, tmp_path)
    lines = path.read_text().splitlines()
    (row,) = [line for line in lines if "synthblood" in line]  # runs without batches are not in it
    assert row.startswith(
        "| tsimcne | default | synthblood | 2 | 0.90 ± 0.00 | 0.30 ± 0.00 | 1.00 ± 0.00 | 0.57 ± 0.04 |"
    )
    assert "| 0.50 ± 0.00 | 0.75 ± 0.07 |" in row  # batch kNN beside its chance, then iLISI
    assert (
        (tmp_path / "batch_vs_biology.csv")
        .read_text()
        .splitlines()[0]
        .startswith("method,aug,dataset,runs,kNN (class)")
    )
    assert write_batch_table([r for r in runs if r.dataset != "synthblood"], tmp_path / "none") is None
