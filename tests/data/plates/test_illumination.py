"""Illumination correction: one flat-field per plate and channel, computed from the plate or read as saved."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile

from medviz.data.plates.illumination import smooth
from medviz.data.sources.plates import load_cellprofiler
from medviz.errors import DataError
from tests.helpers.plates import CHANNELS, write_hostile_seg, write_screen, write_spreadsheet

BOX = 16


def _vignetted(screen, strength: float = 0.5) -> np.ndarray:
    """Multiply every field of ``screen`` by the same bright-centre illumination (as a microscope does)."""
    yy, xx = (np.mgrid[0 : screen.side, 0 : screen.side] + 0.5) / screen.side * 2 - 1
    light = 1 - strength * (xx**2 + yy**2) / 2
    for f in screen.fields:
        for file in f.files.values():
            tifffile.imwrite(file, np.round(tifffile.imread(file) * light).astype(np.uint16))
    return light


def test_smoothing_keeps_a_smooth_function_and_scales_it_to_mean_one():
    yy, xx = np.mgrid[0:200, 0:300] / 200.0
    light = 1 + 0.3 * xx - 0.2 * yy
    function = smooth(light * 1000 + np.random.default_rng(0).normal(0, 5, light.shape))
    assert function.shape == (200, 300) and function.dtype == np.float32
    assert function.mean() == pytest.approx(1, abs=1e-5)
    np.testing.assert_allclose(function, light / light.mean(), atol=0.03)


def test_a_plate_s_own_flat_field_evens_out_its_vignetting(tmp_path):
    screen = write_screen(tmp_path / "screen", plates=("P1",), wells=("A01", "A02", "A03", "B01", "B02", "B03"))
    _vignetted(screen)
    tables = write_spreadsheet(screen, tmp_path / "export")
    plain = load_cellprofiler(str(tables), box=BOX, workers=1)
    corrected = load_cellprofiler(str(tables), box=BOX, illumination="plate", workers=1)

    def background_spread(data):
        corners = np.asarray(data.images)[:, 0, 0, 0].astype(float)  # a background pixel of each crop
        return corners.max() / corners.min()

    assert background_spread(plain) > 1.2
    assert background_spread(corrected) < 1.1  # the same background wherever the object sits
    assert len(list((tmp_path / "cache" / "stores").glob("*/illumination/P1-*_IllumOrigDNA.npy"))) == 1


def test_saved_functions_are_divided_by_and_a_missing_one_is_named(tmp_path):
    screen = write_screen(tmp_path / "screen", plates=("P1",))
    tables = write_spreadsheet(screen, tmp_path / "export")
    folder = tmp_path / "illum"
    folder.mkdir()
    np.save(folder / "P1_IllumOrigDNA.npy", np.full((64, 64), 2.0))
    np.save(folder / "P1_IllumOrigMito.npy", np.ones((64, 64)))
    plain = np.asarray(load_cellprofiler(str(tables), box=BOX, workers=1).images)
    divided = np.asarray(load_cellprofiler(str(tables), box=BOX, illumination=str(folder), workers=1).images)
    np.testing.assert_array_equal(divided[..., 1], plain[..., 1])
    np.testing.assert_allclose(divided[..., 0], plain[..., 0] / 2, atol=0.5)  # rounded back to 16-bit
    (folder / "P1_IllumOrigMito.npy").unlink()
    with pytest.raises(DataError, match=r"no P1_IllumOrigMito.npy for plate 'P1', channel OrigMito"):
        load_cellprofiler(str(tables), box=BOX, illumination=str(folder), workers=1)
    with pytest.raises(DataError, match=r"dataset.illumination=.*nowhere: choose plate, none, or a folder"):
        load_cellprofiler(str(tables), box=BOX, illumination=str(tmp_path / "nowhere"), workers=1)


def test_a_saved_function_that_holds_a_pickle_is_never_unpickled(tmp_path, caplog):
    screen = write_screen(tmp_path / "screen", plates=("P1",))
    tables = write_spreadsheet(screen, tmp_path / "export")
    folder = tmp_path / "illum"
    folder.mkdir()
    marker = tmp_path / "it-ran"
    for channel in CHANNELS:
        write_hostile_seg(folder / f"P1_Illum{channel}.npy", marker)
    with caplog.at_level(logging.WARNING, logger="medviz"), pytest.raises(DataError):
        load_cellprofiler(str(tables), box=BOX, illumination=str(folder), workers=1)
    assert not marker.exists()
    assert "P1_IllumOrigDNA.npy" in caplog.text
