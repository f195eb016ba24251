"""Fluorescence data through the real readers: every layout, 16 bits and 5 channels kept, trained on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from medviz.data.datamodule import MemmapImages
from medviz.data.prepare.channels import configure_channels
from medviz.data.sources.arrays import load_arrays
from medviz.data.sources.folder import load_folder
from medviz.errors import ConfigError, DataError
from medviz.maps.embed import embed_into_run
from medviz.training.pipeline import train
from tests.helpers.commands import medviz
from tests.helpers.config import compose_config
from tests.helpers.fluorescence_formats import (
    CHANNEL_PATTERNS,
    LAYOUTS,
    OME_CHANNEL_NAMES,
    cell_images,
    write_fluorescence,
)

TINY_FLUORESCENCE = [
    "backbone=tinycnn",
    "backbone.width=8",
    "aug=fluorescence",
    "schedule.epochs=[1,1,1]",
    "batch_size=8",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "eval.snapshot_every=0",
]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))


def dataset_overrides(layout: str, path) -> list[str]:
    if layout == "npz":
        return ["dataset=arrays", f"dataset.path={path}"]
    extra = [f"dataset.channel_files=[{','.join(CHANNEL_PATTERNS)}]"] if layout == "channel_files" else []
    return ["dataset=folder", f"dataset.path={path}", "dataset.size=16", *extra]


def load(layout: str, path):
    if layout == "npz":
        return load_arrays(str(path))
    return load_folder(str(path), size=16, channel_files=CHANNEL_PATTERNS if layout == "channel_files" else None)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_keeps_five_16bit_channels_and_trains(tmp_path, layout):
    path, written = write_fluorescence(tmp_path / "cells", layout)
    data = load(layout, path)
    # The store holds what tifffile reads, channels last, not rescaled.
    assert data.images.dtype == np.uint16 and data.images.shape == (16, 16, 16, 5)
    np.testing.assert_array_equal(data.images, written.transpose(0, 2, 3, 1))
    if layout == "ome":
        first = tifffile.imread(tmp_path / "cells" / "ctrl" / "cell000.ome.tif")
        np.testing.assert_array_equal(data.images[0], first.transpose(1, 2, 0))
    assert data.class_names == ("ctrl", "drug") and np.bincount(data.labels).tolist() == [8, 8]

    run_dir = tmp_path / "run"
    metrics = train(compose_config([*TINY_FLUORESCENCE, *dataset_overrides(layout, path)], run_dir=run_dir))
    assert metrics["channels"] == 5 and metrics["dtype"] == "uint16"
    assert metrics["intensity"]["mode"] == "dataset"
    weights = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    first_layer = weights["backbone.body.0.weight"]
    assert first_layer.shape[1] == 5  # the first layer reads the data's five channels


def test_store_values_after_each_normalisation_are_the_stated_formula(tmp_path):
    path, written = write_fluorescence(tmp_path / "cells", "channels_first")
    stored = load_folder(str(path), size=16).images.astype(np.float64)  # (N, H, W, C)
    per_channel = stored.reshape(-1, 5)
    low, high = np.percentile(per_channel, 0.1, axis=0), np.percentile(per_channel, 99.9, axis=0)

    dataset = configure_channels(load_folder(str(path), size=16), normalise="dataset")
    np.testing.assert_allclose(dataset.scale().low, low) and np.testing.assert_allclose(dataset.scale().high, high)
    np.testing.assert_allclose(
        dataset.scale().to_unit(dataset.images), np.clip((stored - low) / (high - low), 0, 1), atol=1e-6
    )

    image = configure_channels(load_folder(str(path), size=16), normalise="image").scale().to_unit(dataset.images)
    lo, hi = stored.min(axis=(1, 2), keepdims=True), stored.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(image, (stored - lo) / (hi - lo), atol=1e-6)

    fixed = configure_channels(load_folder(str(path), size=16), normalise="fixed", intensity_range=[100, 1100])
    np.testing.assert_allclose(fixed.scale().to_unit(dataset.images), np.clip((stored - 100) / 1000, 0, 1), atol=1e-6)

    # The model's own preprocessing maps the stored images the same way (it is what a checkpoint carries).
    from medviz.models.preprocess import Preprocess

    stats = dataset.stats()
    model_unit = Preprocess(stats.mean, stats.std, stats.intensity).to_unit(
        torch.from_numpy(dataset.images.transpose(0, 3, 1, 2).copy())
    )
    np.testing.assert_allclose(
        model_unit.numpy().transpose(0, 2, 3, 1), dataset.scale().to_unit(dataset.images), atol=1e-6
    )


def test_eight_bit_rgb_keeps_the_exact_old_mapping():
    from medviz.data.synthetic.synthblood import load_synthblood
    from medviz.models.preprocess import Preprocess

    data = configure_channels(load_synthblood(n_images=64))
    assert data.scale().is_byte_range() and data.display_images() is data.images
    stats = data.stats()
    images = torch.from_numpy(data.images.transpose(0, 3, 1, 2).copy())
    assert torch.equal(Preprocess(stats.mean, stats.std, stats.intensity).to_unit(images), images.float() / 255.0)


def test_mixed_channel_counts_name_the_odd_files(tmp_path):
    path, _ = write_fluorescence(tmp_path / "cells", "channels_first")
    tifffile.imwrite(path / "drug" / "odd.tif", cell_images(1, channels=3)[0])
    with pytest.raises(
        DataError, match=r"16 with 5 channel\(s\) of uint16.*1 with 3 channel\(s\) of uint16 \(e\.g\. .*odd\.tif\)"
    ):
        load_folder(str(path), size=16)


def test_a_field_missing_a_channel_file_is_named(tmp_path):
    path, _ = write_fluorescence(tmp_path / "cells", "channel_files")
    (path / "drug" / "cell003_w4.tif").unlink()
    with pytest.raises(DataError, match=r"'cell003' in .*drug: missing cell003_w4\.tif"):
        load_folder(str(path), size=16, channel_files=CHANNEL_PATTERNS)


def test_a_3d_stack_is_refused_rather_than_cut_to_one_plane(tmp_path):
    (tmp_path / "a").mkdir(parents=True)
    tifffile.imwrite(
        tmp_path / "a" / "stack.ome.tif", np.zeros((4, 2, 8, 8), np.uint16), ome=True, metadata={"axes": "ZCYX"}
    )
    with pytest.raises(DataError, match=r"stack\.ome\.tif: a 3-D stack .*save a projection"):
        load_folder(str(tmp_path / "a"), size=8)


def test_rgb_only_augmentations_on_five_channels_point_to_aug_fluorescence(tmp_path):
    path, _ = write_fluorescence(tmp_path / "cells", "channels_first")
    overrides = [o for o in TINY_FLUORESCENCE if o != "aug=fluorescence"]
    with pytest.raises(
        ConfigError, match=r"ColorJitter and grayscale, which need RGB images.*5 channel\(s\): use aug=fluorescence"
    ):
        train(compose_config([*overrides, *dataset_overrides("folder", path)], run_dir=tmp_path / "run"))


def test_npz_with_labels_shorter_than_images_is_refused(tmp_path):
    images = cell_images(10).transpose(0, 2, 3, 1)
    np.savez(tmp_path / "cells.npz", images=images, labels=np.zeros(7, np.int64))
    with pytest.raises(DataError, match=r"'labels' has shape \(7,\) but there are 10 images"):
        load_arrays(str(tmp_path / "cells.npz"))


def test_npz_in_channels_first_layout_and_any_integer_dtype(tmp_path):
    images = cell_images(6)  # (N, C, H, W)
    np.savez(tmp_path / "cells.npz", images=images.astype(np.int32), labels=np.array(["a", "b"] * 3))
    data = load_arrays(str(tmp_path / "cells.npz"))
    assert data.images.dtype == np.uint16 and data.class_names == ("a", "b")
    np.testing.assert_array_equal(data.images, images.transpose(0, 2, 3, 1))


def test_embed_with_another_channel_count_is_a_clear_error(tmp_path):
    path, _ = write_fluorescence(tmp_path / "cells", "channels_first")
    run_dir = tmp_path / "run"
    train(compose_config([*TINY_FLUORESCENCE, *dataset_overrides("folder", path)], run_dir=run_dir))
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(rgb / "x.png")
    with pytest.raises(DataError, match=r"3 channel\(s\), but the network .* was trained on 5-channel images"):
        embed_into_run(run_dir, rgb, tmp_path / "out")
    # Images like the training ones are placed, and the map tools show them as composites.
    out = embed_into_run(run_dir, path / "ctrl", tmp_path / "out")
    assert np.load(out / "embedded.npz")["embedding"].shape == (8, 2)
    for command in ("figures", "qc", "explore"):
        result = medviz(command, "--run", str(run_dir))
        assert result.returncode == 0, result.stderr
    assert "channel 0: blue" in (run_dir / "explorer.html").read_text()  # channels_first TIFFs name none
    relabelled = medviz("explore", "--run", str(run_dir), "--channel-names", "DNA, ER,RNA,AGP,Mito")
    assert relabelled.returncode == 0, relabelled.stderr
    assert "DNA: blue" in (run_dir / "explorer.html").read_text()  # a finished run relabelled
    wrong = medviz("figures", "--run", str(run_dir), "--channel-names", "DNA,ER")
    assert wrong.returncode == 1 and "--channel-names gives 2 names" in wrong.stderr and "5 channel(s)" in wrong.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["intensity"]["percentiles"] == [0.1, 99.9]


def test_channel_names_come_from_ome_metadata_and_channel_file_patterns(tmp_path):
    path, _ = write_fluorescence(tmp_path / "ome", "ome")
    assert load("ome", path).channel_names == OME_CHANNEL_NAMES  # "RNA & <AGP>" unescaped, as text
    path, _ = write_fluorescence(tmp_path / "split", "channel_files")
    assert load("channel_files", path).channel_names == ("w1", "w2", "w3", "w4", "w5")
    path, _ = write_fluorescence(tmp_path / "plain", "channels_first")
    assert load("channels_first", path).channel_names is None  # the legend says "channel 0 ..."
    named = configure_channels(load("ome", write_fluorescence(tmp_path / "o2", "ome")[0]), channel_names=list("abcde"))
    assert named.channel_names == tuple("abcde")  # dataset.channel_names still decides


def test_dataset_percentiles_are_computed_once_and_kept_with_the_cache(tmp_path, monkeypatch):
    path, _ = write_fluorescence(tmp_path / "cells", "channels_first")
    first = configure_channels(load_folder(str(path), size=16), normalise="dataset").scale()
    kept = list((tmp_path / "cache").rglob("*.intensity-0.1-99.9.json"))  # in the folder's store
    assert len(kept) == 1
    monkeypatch.setattr("medviz.data.intensity.dataset_percentiles", lambda *a: pytest.fail("computed again"))
    again = configure_channels(load_folder(str(path), size=16), normalise="dataset").scale()
    assert again == first


def test_a_memory_mapped_16bit_dataset_is_served_in_its_stored_dtype(tmp_path):
    """The on-disk path (datasets too large for RAM) must not recast 16-bit counts to 8 bits."""
    path = tmp_path / "counts.npy"
    stored = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(6, 4, 4, 2))
    stored[:] = (np.arange(stored.size) * 300).reshape(stored.shape)
    stored.flush()
    images = np.load(path, mmap_mode="r")
    batch, indices = MemmapImages(images).__getitems__([5, 0, 3])
    assert batch.dtype == torch.uint16 and indices.tolist() == [5, 0, 3]
    assert torch.equal(batch, torch.from_numpy(np.asarray(images)[[5, 0, 3]].transpose(0, 3, 1, 2).copy()))
