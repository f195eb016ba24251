"""`make paper-miniature`: the digits control, paired bootstrap differences and the report."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import yaml
from sklearn.datasets import load_digits as sklearn_digits

from medviz.data.sources.digits import load_digits
from medviz.evaluation.miniature import report
from medviz.evaluation.paired import paired_difference
from medviz.runs.rebuild import build_data
from tests.helpers.config import REPO, compose_config

# Starts training runs (often in processes of their own): scheduled first, see tests/conftest.py.
pytestmark = pytest.mark.trains


def test_paired_difference_finds_a_direction_only_when_every_resample_agrees():
    default = {0: 0.80, 1: 0.85, 2: 0.70, 3: 0.90, 4: 0.75}
    better = {seed: value + 0.03 + 0.005 * seed for seed, value in default.items()}
    higher = paired_difference(better, default)
    assert higher.mean == pytest.approx(0.04) and higher.direction == "higher"
    assert 0.03 <= higher.low < higher.mean < higher.high <= 0.05
    mixed = paired_difference({0: 0.81, 1: 0.83, 2: 0.71, 3: 0.92, 4: 0.74}, default)
    assert mixed.low < 0 < mixed.high and mixed.direction == "no clear difference"
    negated = paired_difference({s: -v for s, v in better.items()}, {s: -v for s, v in default.items()})
    assert negated.direction == "lower"
    # Only common seeds are paired; one seed is no interval; the same inputs give the same interval.
    assert paired_difference({0: 0.9, 7: 0.1}, default) is None
    assert paired_difference(better, default) == higher
    assert paired_difference({0: 0.9, 1: 0.9, 9: 0.0}, default).seeds == (0, 1)


def test_digits_come_from_scikit_learns_scans_scaled_to_8_bits(caplog):
    raw = sklearn_digits()
    with caplog.at_level(logging.INFO, logger="medviz"):
        at_8px = load_digits(size=8)
    assert at_8px.images.shape == (1797, 8, 8, 3) and at_8px.images.dtype == np.uint8
    expected = np.round(raw.images * 255 / 16).astype(np.uint8)
    assert np.array_equal(at_8px.images[..., 0], expected)  # 0 -> 0, 8 -> 128, 16 -> 255
    assert np.array_equal(at_8px.images[..., 0], at_8px.images[..., 2])
    assert np.array_equal(at_8px.labels, raw.target) and at_8px.class_names == tuple("0123456789")
    assert "grey levels 0-16 scaled to 0-255" in caplog.text
    cfg = compose_config(["dataset=digits"])
    data = build_data(cfg)
    assert data.name == "digits" and data.images.shape == (1797, 28, 28, 3)
    assert np.bincount(data.labels).tolist() == np.bincount(raw.target).tolist()


def test_digits_refuse_a_size_below_the_scans():
    from medviz.errors import ConfigError

    with pytest.raises(ConfigError, match="digits needs dataset.size >= 8"):
        load_digits(size=4)


def fake_run(root, method, aug, dataset, seed, features=None, **metrics):
    """A run folder as train.py leaves it: config.yaml, metrics.json, embedding.npz (+ features.npz)."""
    run = root / f"{dataset}-{method}-{aug}-seed{seed}"
    run.mkdir(parents=True)
    config = {"method": {"name": method}, "aug": {"name": aug}, "dataset": {"name": dataset}, "seed": seed}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "metrics.json").write_text(json.dumps(metrics))
    labels = np.repeat(np.arange(4), 25)
    coords = np.random.default_rng(seed).normal(size=(100, 2)).astype(np.float32)
    np.savez(run / "embedding.npz", embedding=coords, labels=labels, index=np.arange(100), class_names=list("abcd"))
    if features is not None:
        np.savez(run / "features.npz", features=features, labels=labels, index=np.arange(100))
    return run


def test_report_gives_differences_verdicts_linear_evaluation_and_the_seed0_figure(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in range(5):
        base = 0.80 + 0.02 * seed
        pixels = {"pixel_tsne_knn_accuracy": 0.6, "pixel_tsne_silhouette": 0.01}
        for dataset, step in (("synthblood", +0.03), ("digits", -0.20)):
            wobble = 0.01 * (-1) ** seed  # up on even seeds, down on odd ones
            cells = (("default", base, 0.3), ("rot90", base + step, 0.3 + step), ("randrot", base + wobble, 0.3))
            for aug, knn, silhouette in cells:
                fake_run(sweep, "tsimcne", aug, dataset, seed, knn_accuracy=knn, silhouette=silhouette, **pixels)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 25)
    separable = (np.eye(4)[labels] * 5 + rng.normal(size=(100, 4))).astype(np.float32)
    for seed in range(3):
        fake_run(sweep, "simclr", "default", "synthblood", seed, rng.normal(size=(100, 4)).astype(np.float32))
        fake_run(sweep, "simclr", "rot90", "synthblood", seed, separable)
    result = report([sweep], tmp_path / "out")
    synth, digits = result["maps"]["synthblood"], result["maps"]["digits"]
    assert synth["rot90"]["knn_accuracy"]["difference"]["mean"] == pytest.approx(0.03)
    assert synth["rot90"]["verdicts"] == {"knn_accuracy": "agrees", "silhouette": "agrees"}  # the paper: higher
    assert digits["rot90"]["verdicts"]["knn_accuracy"] == "agrees"  # the paper: lower on oriented images
    assert synth["randrot"]["verdicts"]["knn_accuracy"] == "cannot tell (interval includes 0)"
    assert synth["randrot"]["verdicts"]["silhouette"] == "cannot tell (interval includes 0)"  # no difference at all
    assert result["linear"]["synthblood"]["rot90"]["verdict"] == "agrees"
    assert min(result["linear"]["synthblood"]["rot90"]["values"].values()) > 0.9
    text = (tmp_path / "out" / "report.md").read_text()
    row = "| digits | rot90 | 5 | 0.640 ± 0.032 | 0.100 ± 0.000 | 0.600 ± 0.000 | 0.010 ± 0.000 |"
    assert row + " -0.200 [-0.200, -0.200] | -0.200 [-0.200, -0.200] | rotations lower | agrees | agrees |" in text
    assert "![maps of seed 0](maps_seed0.png)" in text and (tmp_path / "out" / "maps_seed0.png").stat().st_size > 10_000


def test_the_miniature_sweep_config_runs_and_reports_end_to_end(tmp_path):
    """A tiny version of `make paper-miniature`'s first sweep through train.py, then the report."""
    sweep = tmp_path / "sweep"
    tiny = ["backbone=tinycnn", "backbone.width=8", "dataset.n_images=80", "batch_size=32", "schedule.epochs=[1,1,1]"]
    params = ["seed=0,1", "dataset=digits", "aug=default,rot90"]  # replace the experiment's swept values
    done = subprocess.run(
        [sys.executable, "train.py", "-m", "experiment=paper_miniature", *tiny, *params,
         "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = subprocess.run(
        [sys.executable, "-m", "medviz.evaluation.miniature", str(sweep), "--out", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "report.json").read_text())
    assert result["runs"] == 4 and result["missing"] == []
    rot90 = result["maps"]["digits"]["rot90"]
    (job,) = sweep.glob("*_digits-tsimcne-rot90-seed1")
    metrics = json.loads((job / "metrics.json").read_text())
    assert rot90["knn_accuracy"]["values"]["1"] == metrics["knn_accuracy"]
    assert rot90["pixel_tsne_knn_accuracy"]["values"]["1"] == metrics["pixel_tsne_knn_accuracy"]
    assert rot90["knn_accuracy"]["difference"]["seeds"] == [0, 1]
    assert "| digits | rot90 | 2 |" in out.stdout


def test_the_report_refuses_folders_without_a_finished_run(tmp_path, capsys):
    from medviz.evaluation.miniature import main

    (tmp_path / "cut" / "0_digits-tsimcne-default-seed0").mkdir(parents=True)  # a job that never finished
    with pytest.raises(SystemExit) as refused:
        main([str(tmp_path / "cut"), "--out", str(tmp_path / "out")])
    assert refused.value.code == 2 and "no finished runs (metrics.json and config.yaml)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "absent")])
    assert "run the sweeps first" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written that would look like a report
