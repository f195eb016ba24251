"""The invariance miniature's report: arms read from run folders, paired differences, targets."""

from __future__ import annotations

import json

import pytest
import yaml

from medviz.evaluation.invariance import read_run, report


def _run(root, name: str, arm: str, seed: int, batches: int, metrics: dict, technical="none", **extra) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    config = {"dataset": {"name": "synthcells", "batches": batches, **extra}, "invariance": {"name": arm}, "seed": seed}
    config["aug"] = {"transform": {"technical": {"kind": technical}}}
    config["method"] = {"name": "tsimcne"}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metrics.json").write_text(json.dumps(metrics))


def _metrics(knn: float, batch_knn: float, ilisi: float) -> dict:
    base = {"knn_accuracy": knn, "silhouette": 0.3, "batch_knn_accuracy": batch_knn, "batch_knn_chance": 0.34}
    base |= {"batch_ilisi": ilisi, "batch_kbet": 0.5, "batch_asw": 0.9, "scib_total": 0.6}
    base |= {"features_batch_knn_accuracy": batch_knn, "features_batch_knn_chance": 0.34}
    base |= {"features_class_knn_accuracy": knn, "features_batch_ilisi": ilisi}
    return base


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    for seed in (0, 1, 2):
        _run(root, f"none{seed}", "none", seed, 3, _metrics(0.80 + 0.01 * seed, 0.95, 0.05))
        _run(root, f"batch{seed}", "batch", seed, 3, _metrics(0.79 + 0.01 * seed, 0.36 + 0.01 * seed, 0.85))
        _run(root, f"ref{seed}", "none", seed, 0, {"knn_accuracy": 0.80 + 0.01 * seed, "silhouette": 0.3})
        _run(root, f"cross{seed}", "none", seed, 3, _metrics(0.9, 0.5, 0.6), perturbation="phenotype")
        _run(root, f"stain{seed}", "batch", seed, 3, _metrics(0.82, 0.36, 0.85), technical="stain")
        _run(root, f"bcross{seed}", "batch", seed, 3, _metrics(0.7, 0.4, 0.8), perturbation="phenotype")
    return root


def test_runs_are_sorted_into_their_arms(sweep):
    assert read_run(sweep / "batch0").arm == "batch" and read_run(sweep / "batch0").planted
    assert read_run(sweep / "ref1").arm == "none" and not read_run(sweep / "ref1").planted
    assert read_run(sweep / "cross2").arm == "cross-batch"
    assert read_run(sweep / "stain1").arm == "batch + technical"
    assert read_run(sweep / "bcross0").arm == "batch + cross-batch"
    assert read_run(sweep / "none0").metrics["batch_knn_above_chance"] == pytest.approx(0.61)


def test_the_report_gives_paired_differences_and_the_targets(sweep, tmp_path):
    result = report([sweep], tmp_path / "out", harmony=False)
    entry = result["datasets"]["synthcells"]
    difference = entry["map"]["batch"]["batch_knn_above_chance"]["difference"]
    assert difference["mean"] == pytest.approx(-0.58) and difference["high"] < 0
    assert entry["map"]["batch"]["knn_accuracy"]["difference"]["mean"] == pytest.approx(-0.01)
    targets = entry["targets"]["batch"]
    assert targets["batch_knn_met"] and targets["ilisi_met"]
    assert targets["class_knn_share"] == pytest.approx(0.80 / 0.81) and targets["class_knn_met"]
    assert not entry["targets"]["none"]["batch_knn_met"]
    assert entry["map"]["cross-batch"]["knn_accuracy"]["values"] == {0: 0.9, 1: 0.9, 2: 0.9}
    assert entry["map"]["batch + cross-batch"]["knn_accuracy"]["values"] == {0: 0.7, 1: 0.7, 2: 0.7}
    assert entry["map"]["batch + technical"]["knn_accuracy"]["difference"]["mean"] == pytest.approx(0.01)
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| batch | 3 |" in text and "-0.580 [" in text and "none, without planted batches" in text
    assert "on the 128-D output" in text


def test_an_empty_sweep_is_refused_with_the_command(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="make invariance-miniature"):
        report([tmp_path / "empty"], tmp_path / "out", harmony=False)


def test_a_sweep_not_run_is_named_and_the_rest_reported(sweep, tmp_path):
    result = report([sweep, tmp_path / "never_run"], tmp_path / "out", harmony=False)
    assert "batch" in result["datasets"]["synthcells"]["map"]
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Sweeps not run" in text and "never\\_run" in text


def test_every_switch_names_the_arm_so_runs_that_differ_are_never_one_arm(sweep, tmp_path):
    for seed in (0, 1):
        _run(sweep, f"homstain{seed}", "homogeneous", seed, 3, _metrics(0.6, 0.5, 0.5), technical="stain")
        _run(sweep, f"mine{seed}", "my_group|*x*", seed, 3, _metrics(0.5, 0.6, 0.4))
    assert read_run(sweep / "homstain0").arm == "homogeneous + technical"
    assert read_run(sweep / "none0").arm == "none"
    result = report([sweep], tmp_path / "out", harmony=False)
    found = result["datasets"]["synthcells"]["map"]
    assert found["homogeneous + technical"]["knn_accuracy"]["values"] == {0: 0.6, 1: 0.6}
    assert found["my_group|*x*"]["knn_accuracy"]["values"] == {0: 0.5, 1: 0.5}  # an arm of the user's own
    text = (tmp_path / "out" / "report.md").read_text()
    assert "my\\_group\\|\\*x\\*" in text and "my_group|*x*" not in text  # shown as text, not markup
