"""Every experiment preset composes with every dataset, and ``dataset.n_images`` subsets any source.

Each dataset is written in its real on-disk format. Every dataset x experiment pair is composed and
its data, method and trainer are built; every dataset trains the quickstart, and every preset that
trains something else (another method, planted problems) trains on a folder of the user's images
(a preset changes the same groups whatever the dataset).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from torchvision.datasets import cifar

from medviz.data.prepare.subset import stratified_counts, stratified_subset
from medviz.data.synthetic.synthblood import load_synthblood
from medviz.errors import ConfigError
from medviz.runs.rebuild import build_method, build_run_data
from medviz.training.build import build_trainer
from medviz.training.pipeline import train
from tests.helpers.config import CONF_DIR, compose_config
from tests.helpers.fluorescence_formats import write_fluorescence
from tests.helpers.formats import write_cifar10, write_image_folder, write_medmnist_npz, write_pcam, write_tcia_tree
from tests.helpers.plates import write_cellpose_masks, write_deepprofiler, write_screen, write_spreadsheet
from tests.helpers.wilds_formats import write_camelyon17, write_rxrx1

# Starts training runs (often in processes of their own): scheduled first, see tests/conftest.py.
pytestmark = pytest.mark.trains

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml"))
TINY_RUN = [
    "backbone=tinycnn",
    "backbone.width=8",
    "dataset.n_images=16",
    "batch_size=8",
    "num_workers=0",
    "qc.count=4",
    "eval.snapshot_every=0",
    "eval.pixel_tsne=false",  # 4 s of t-SNE per run; its path has tests of its own
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Iterator[Path]:
    """Every source's files in their real layout, once for the module; caches beside them."""
    root = tmp_path_factory.mktemp("data")
    for flag, classes in (("bloodmnist", 8), ("dermamnist", 7), ("pathmnist", 9)):
        write_medmnist_npz(root, flag, n_classes=classes)
    write_medmnist_npz(root, "organamnist", n_classes=11, gray=True)
    write_tcia_tree(root / "leukemia", {"NGS": 8, "LYT": 6, "BAS": 3})
    write_pcam(root / "pcam", sizes=(("train", 12), ("valid", 4), ("test", 4)))  # > 16: a subset in memory
    write_cifar10(root, per_batch=4)
    write_image_folder(root / "folder", classes=("a", "b", "c"))
    cells, _ = write_fluorescence(root / "arrays", "npz")  # 5-channel 16-bit cells as an .npz
    cells.rename(cells.with_name("arrays.npz"))  # named as the dataset, like the image folder
    screen = write_screen(root / "screen", wells=("A01", "B02", "C03"))  # 2 plates x 3 fields x 3 cells
    write_spreadsheet(screen, root / "cellprofiler")
    write_deepprofiler(screen, root / "deepprofiler")
    write_cellpose_masks(screen, root / "masks")
    write_rxrx1(root / "rxrx1")
    write_camelyon17(root / "camelyon17")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDVIZ_CACHE", str(root / "cache"))
        patch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
        yield root


def dataset_overrides(dataset: str, root: Path) -> list[str]:
    where = {
        "synthblood": [],
        "medmnist": ["dataset.flag=organamnist", f"dataset.root={root}"],
        "leukemia": [f"dataset.root={root / 'leukemia'}", "dataset.source.threshold=3"],
        "pcam": [f"dataset.root={root / 'pcam'}"],
        "folder": [f"dataset.path={root / 'folder'}"],
        "synthcells": [],
        "digits": [],
        "digits_native": [],
        "arrays": [f"dataset.path={root / 'arrays' / 'arrays.npz'}"],
        # Plates: crops of 16 px from fields of 64 px (tests/helpers/plates.py)
        "cellprofiler": [f"dataset.path={root / 'cellprofiler'}", "dataset.box=16"],
        "deepprofiler": [f"dataset.path={root / 'deepprofiler'}", "dataset.box=16"],
        "masks": [
            f"dataset.path={root / 'screen'}",
            f"dataset.masks_path={root / 'masks'}",
            'dataset.channel_files=["*_OrigDNA.tif","*_OrigMito.tif"]',
            "dataset.box=16",
        ],
        "synthplates": ["dataset.plates=1", "dataset.wells=4", "dataset.sites=1"],
        "rxrx1": [f"dataset.path={root / 'rxrx1'}", "dataset.size=32"],
        "camelyon17": [f"dataset.path={root / 'camelyon17'}", "dataset.size=24"],
    }
    return [f"dataset={dataset}", *where.get(dataset, [f"dataset.root={root}"])]


def experiment_overrides(experiment: str) -> list[str]:
    cfg = compose_config([f"experiment={experiment}"])
    if cfg.method.name == "tsimcne":  # the shortest schedule of each kind: one epoch per stage
        return [f"experiment={experiment}", "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]"]
    return [f"experiment={experiment}", "schedule.epochs=1", "schedule.warmup_epochs=0"]


def tiny_config(dataset: str, experiment: str, root: Path, run_dir: Path | None = None):
    return compose_config(
        [*dataset_overrides(dataset, root), *experiment_overrides(experiment), *TINY_RUN], run_dir=run_dir
    )


def test_the_preset_lists_are_what_the_tests_cover():
    assert "quickstart" in EXPERIMENTS and len(EXPERIMENTS) >= 10 and set(TRAINING_PRESETS) <= set(EXPERIMENTS)
    assert {"synthblood", "folder", "pcam", "leukemia", "cifar10", "medmnist"} <= set(DATASETS)


#: Datasets of fluorescence images (5 channels, 16-bit): RGB colour augmentations and qc.inject refuse them.
FLUORESCENCE = {"synthcells", "arrays", "cellprofiler", "deepprofiler", "masks", "synthplates"}


def made_for_rgb(cfg) -> bool:
    """Whether a config asks for something only 8-bit RGB images have (colour jitter, grayscale, HED stain
    jitter, planted artefacts)."""
    aug = cfg.aug.transform
    stain = aug.technical.kind == "stain"
    return bool(aug.jitter_p > 0 and any(aug.jitter) or aug.gray_p > 0 or stain or cfg.qc.inject)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_every_preset_composes_and_builds_with_every_dataset(dataset, experiment, data_root, tmp_path):
    cfg = tiny_config(dataset, experiment, data_root, run_dir=tmp_path)
    if dataset in FLUORESCENCE and made_for_rgb(cfg):  # refused clearly, with the way out
        with pytest.raises(ConfigError, match=r"8-bit RGB|need RGB images.*use aug=fluorescence"):
            data, _ = build_run_data(cfg)
            build_method(cfg, data.stats())
        return
    with mock.patch.object(cifar, "check_integrity", return_value=True):
        data, injected = build_run_data(cfg)
    # Data read from a path are named after it: folder-<folder>, arrays-<file> (the source says <folder>).
    assert cfg.dataset.name in (data.name, f"{dataset}-{data.name}")
    assert 2 <= len(data) <= 16 + (4 if injected is not None else 0)
    module = build_method(cfg, data.stats())
    build_trainer(cfg, module, tmp_path, loggers=[])


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_quickstart_trains_on_every_dataset(dataset, data_root, tmp_path):
    preset = "quickstart_fluorescence" if dataset in FLUORESCENCE else "quickstart"
    with mock.patch.object(cifar, "check_integrity", return_value=True):
        metrics = train(tiny_config(dataset, preset, data_root, run_dir=tmp_path / "run"))
    assert metrics["n_images"] <= 16 and (tmp_path / "run" / "map.png").is_file()


# Presets that train something the quickstart does not: another method, or planted problems. The
# others are sweeps of the default run or quickstart variants, built above for every dataset.
TRAINING_PRESETS = ["paper_byol", "paper_simclr", "qc_artefacts", "qc_duplicates"]


@pytest.mark.parametrize("experiment", TRAINING_PRESETS)
def test_every_preset_that_changes_training_trains_on_a_folder_of_images(experiment, data_root, tmp_path):
    metrics = train(tiny_config("folder", experiment, data_root, run_dir=tmp_path / "run"))
    assert np.load(tmp_path / "run" / "embedding.npz")["embedding"].shape == (metrics["n_images"], 2)


def test_stratified_counts_keep_every_class_and_add_up():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 9 + [-1] * 1)
    counts = stratified_counts(labels, 100)
    assert sum(counts.values()) == 100 and min(counts.values()) >= 1
    assert counts[0] > counts[1] > counts[2]
    assert stratified_counts(labels, 3) == {-1: 0, 0: 3, 1: 0, 2: 0}  # fewer than the classes: by share


def test_a_subset_is_seeded_stratified_and_in_dataset_order():
    data = load_synthblood(n_images=800, seed=0)
    subset = stratified_subset(data, 200, seed=0)
    again = stratified_subset(data, 200, seed=0)
    other = stratified_subset(data, 200, seed=1)
    assert len(subset) == 200 and np.array_equal(subset.images, again.images)
    assert not np.array_equal(subset.images, other.images)
    shares = np.bincount(data.labels) / len(data)
    assert np.allclose(np.bincount(subset.labels) / 200, shares, atol=0.01)
    rows = [int(np.flatnonzero((data.images == image).all(axis=(1, 2, 3)))[0]) for image in subset.images[:20]]
    assert rows == sorted(rows)  # dataset order kept
    assert stratified_subset(data, 5000) is data  # asking for more than there are uses all
