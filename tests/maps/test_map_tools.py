"""Tools on finished runs: `medviz embed` (new images into a map) and `medviz figures`."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from medviz.data.synthetic.synthblood import load_synthblood
from medviz.maps.embed import embed_images, load_trained
from medviz.training.pipeline import train
from tests.helpers.commands import medviz
from tests.helpers.config import REPO, TINY, compose_config
from tests.helpers.formats import write_image_folder

# Starts training runs (often in processes of their own): scheduled first, see tests/conftest.py.
pytestmark = pytest.mark.trains

SHORT = [*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tsimcne")
    train(compose_config(SHORT, run_dir=folder))
    return folder


def medviz_process(*args: str) -> subprocess.CompletedProcess:
    """``python -m medviz ...`` in its own process: the entry point as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "medviz", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_training_images_land_at_their_training_coordinates(run_dir, tmp_path):
    images = load_synthblood(n_images=96, seed=0).images  # the run's own images (TINY: 96, seed 0)
    np.savez(tmp_path / "train.npz", images=images[:20])
    done = medviz_process(
        "embed", "--run", str(run_dir), "--images", str(tmp_path / "train.npz"), "--out", str(tmp_path / "out")
    )
    assert done.returncode == 0, done.stderr[-3000:]
    placed = np.load(tmp_path / "out" / "embedded.npz")
    trained = np.load(run_dir / "embedding.npz")["embedding"][:20]
    np.testing.assert_allclose(placed["embedding"], trained, atol=1e-4)
    assert list(placed["names"][:2]) == ["images[0]", "images[1]"]
    assert (tmp_path / "out" / "embedded.png").stat().st_size > 10_000


def test_a_folder_of_new_images_of_any_size(run_dir, tmp_path):
    folder = write_image_folder(tmp_path / "new", classes=("x", "y"), per_class=3)
    done = medviz("embed", "--run", str(run_dir), "--images", str(folder))
    assert done.returncode == 0, done.stderr[-3000:]
    placed = np.load(run_dir / "embedded" / "new" / "embedded.npz")
    assert placed["embedding"].shape == (6, 2) and np.isfinite(placed["embedding"]).all()
    assert sorted(placed["names"])[0].startswith("x/")


def test_maps_made_by_tsne_cannot_place_new_images(tmp_path):
    simclr = tmp_path / "simclr"
    train(compose_config([*TINY, "method=simclr", "schedule.epochs=1", "schedule.warmup_epochs=0"], run_dir=simclr))
    np.savez(tmp_path / "x.npz", images=np.zeros((2, 28, 28, 3), np.uint8))
    done = medviz("embed", "--run", str(simclr), "--images", str(tmp_path / "x.npz"))
    assert done.returncode == 1 and "only t-SimCNE runs map new images directly" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ("missing.npz", "expected a folder of images or an .npz file"),
        ("wrong.npz", "must be 28x28"),
        ("objects.npz", "its images are Python objects (a pickle), which medviz never loads"),
        ("text.npz", "is not an .npz (not a zip archive of arrays)"),
    ],
)
def test_bad_inputs_to_embed(run_dir, tmp_path, images, message):
    np.savez(tmp_path / "wrong.npz", images=np.zeros((2, 32, 32, 3), np.uint8))
    np.savez(tmp_path / "objects.npz", images=np.array([np.zeros((28, 28, 3)), "x"], dtype=object))
    (tmp_path / "text.npz").write_text("not an archive")
    done = medviz("embed", "--run", str(run_dir), "--images", str(tmp_path / images))
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_embed_into_a_run_folder_that_does_not_exist(tmp_path):
    done = medviz("embed", "--run", str(tmp_path / "nope"), "--images", str(tmp_path))
    assert done.returncode == 1 and "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_figures_of_a_run_as_png_and_pdf(run_dir, tmp_path):
    done = medviz("figures", "--run", str(run_dir), "--out", str(tmp_path / "fig"))
    assert done.returncode == 0, done.stderr[-3000:]
    names = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert names == [f"{stem}.{ext}" for stem in ("map", "map_grid", "map_thumbnails") for ext in ("pdf", "png")]
    assert all((tmp_path / "fig" / name).stat().st_size > 5_000 for name in names)


def test_grid_has_one_image_per_square_with_enough_points():
    from medviz.maps.figures import grid_cells

    coords = np.array([[x, y] for x in range(10) for y in range(10) for _ in range(3)], float)  # 3 points a square
    coords = np.vstack([coords, [[0.2, 0.2]] * 5])  # the corner square gets 8
    assert len(grid_cells(coords, grid=10, min_points=3)) == 100
    assert [cell[:2] for cell in grid_cells(coords, grid=10, min_points=5)] == [(0, 0)]


def test_small_classes_are_grouped_in_black_as_in_the_paper():
    from medviz.maps.plots import grouped_palette

    labels = np.array([0] * 60 + [1] * 39 + [2])  # class 2 holds 1 % of the images
    colours, legend = grouped_palette(labels, ["big", "mid", "tiny"], small_class_fraction=0.02)
    assert [name for name, _ in legend] == ["big (60)", "mid (39)", "OTH: 1 small classes (1)"]
    assert tuple(colours[-1]) == (0, 0, 0, 1) and tuple(colours[0]) != (0, 0, 0, 1)


def test_embedding_a_folder_and_an_npz_of_one_name_keeps_both(run_dir, tmp_path):
    folder = write_image_folder(tmp_path / "batch", classes=("x", "y"), per_class=3)
    np.savez(tmp_path / "batch.npz", images=load_synthblood(n_images=96, seed=0).images[:5])
    for source in (folder, tmp_path / "batch.npz"):
        done = medviz("embed", "--run", str(run_dir), "--images", str(source))
        assert done.returncode == 0, done.stderr[-3000:]
        assert "replacing earlier results" not in done.stdout
    assert np.load(run_dir / "embedded" / "batch" / "embedded.npz")["embedding"].shape == (6, 2)
    assert np.load(run_dir / "embedded" / "batch.npz" / "embedded.npz")["embedding"].shape == (5, 2)
    again = medviz("embed", "--run", str(run_dir), "--images", str(folder))
    assert f"replacing earlier results: {run_dir / 'embedded' / 'batch' / 'embedded.npz'}" in again.stdout


def test_a_run_that_lost_its_config_is_restored_by_resume_and_read_by_the_map_tools(tmp_path):
    run = tmp_path / "run"
    train(compose_config(SHORT, run_dir=run))
    for name in ("config.yaml", "embedding.npz", "metrics.json"):  # interrupted, then config.yaml deleted
        (run / name).unlink()
    train(compose_config([*SHORT, f"resume={run}"], run_dir=tmp_path / "command"))
    assert (run / "config.yaml").is_file() and (run / "config-resumed.yaml").is_file()
    done = medviz("figures", "--run", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    (run / "config.yaml").unlink()  # a run folder with only its resumed config is still a finished run
    done = medviz("figures", "--run", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"replacing earlier results: {run / 'figures'}" in done.stdout


def _write_in_the_earlier_layout(run_dir) -> None:
    """Rewrite a run folder as medviz wrote it before the model owned its preprocessing: SGD and the
    schedule inside ``method.module``, schedules in ``medviz.schedules``, normalisation in
    ``augment.*`` and a second stage flag ``head.use_2d`` in every checkpoint."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    schedule = {**config["schedule"], "_target_": "medviz.schedules.three_stage"}
    config["schedule"] = schedule
    method = config["method"]
    method["module"].update(schedule=schedule, momentum=0.9, weight_decay=5e-4, grad_clip=None)
    config["method"] = {"name": method["name"], "module": method["module"], "base_lr": method["base_lr"]}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        weights = checkpoint["state_dict"]
        weights["augment.mean"], weights["augment.std"] = weights.pop("preprocess.mean"), weights.pop("preprocess.std")
        weights["head.use_2d"], weights["dim_scale"] = torch.tensor(True), torch.tensor(1.0)
        torch.save(checkpoint, path)


def test_a_run_folder_of_the_earlier_layout_still_places_images_the_same(run_dir, tmp_path):
    images = load_synthblood(n_images=96, seed=0).images[:10]
    before = embed_images(load_trained(run_dir, torch.device("cpu")), images)
    earlier = tmp_path / "earlier"
    shutil.copytree(run_dir, earlier)
    _write_in_the_earlier_layout(earlier)
    np.testing.assert_array_equal(embed_images(load_trained(earlier, torch.device("cpu")), images), before)


ODD_CLASSES = ("a$\\frac$", "_b", "c|d <i>")


@pytest.mark.trains
def test_class_names_with_mathtext_markup_and_pipes_train_map_and_report_as_written(tmp_path):
    """A class folder named ``a$\\frac$`` once stopped training at the first map snapshot."""
    folder = write_image_folder(tmp_path / "odd", classes=ODD_CLASSES, per_class=16)
    run = tmp_path / "run"
    overrides = [*SHORT, "dataset=folder", f"dataset.path={folder}", "dataset.size=28", "eval.snapshot_every=1"]
    train(compose_config([o for o in overrides if not o.startswith("dataset.source.n_images")], run_dir=run))
    assert list((run / "maps").glob("epoch*.png")) and (run / "map.png").is_file()
    done = medviz("qc", "--run", str(run), "--min-size", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    report = (run / "qc" / "report.md").read_text()
    for line in report.splitlines():
        if line.startswith("| ") and "c\\|d &lt;i&gt;" in line:
            assert line.count(" | ") == 7  # eight columns, however the class is named
    done = medviz("figures", "--run", str(run))
    assert done.returncode == 0, done.stderr[-3000:]


def test_thumbnail_and_grid_figures_carry_class_and_channel_legends(tmp_path, monkeypatch):
    from medviz.maps import figures

    captured = []
    monkeypatch.setattr(figures, "save_both", lambda fig, stem: captured.append(fig) or [stem])
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(200, 2))
    labels = rng.integers(0, 2, 200)
    images = rng.integers(0, 256, (200, 16, 16, 3), dtype=np.uint8)
    names = ["a$\\frac$", "b|c"]
    figures.thumbnail_map(coords, labels, names, images, tmp_path / "t", channel_legend="DNA green, Mito magenta")
    figures.grid_map(coords, labels, names, images, tmp_path / "g", grid=3, min_points=1, channel_legend="")
    for fig, channels in zip(captured, (True, False), strict=True):
        (legend,) = fig.legends
        shown = [t.get_text().replace("\\$", "$").rsplit(" (", 1)[0] for t in legend.get_texts()]
        assert shown == names  # each class as written, with its colour
        texts = [t.get_text() for t in fig.texts]
        assert (texts == ["channels: DNA green, Mito magenta"]) == channels
