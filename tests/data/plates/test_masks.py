"""Fields with label images (Cellpose's _cp_masks and _seg.npy): one crop per label at its centroid."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile

from medviz.data.sources.plates import load_cellprofiler, load_masks
from medviz.errors import ConfigError, DataError
from tests.helpers.plates import (
    CHANNELS,
    HALF,
    write_cellpose_masks,
    write_hostile_seg,
    write_screen,
    write_spreadsheet,
)

BOX = 16
PATTERNS = [f"*_{c}.tif" for c in CHANNELS]


def _check_identity(data, screen):
    by_path = {f.files[CHANNELS[0]].relative_to(screen.images).as_posix(): f for f in screen.fields}
    images = np.asarray(data.images)
    for row, record in data.metadata.iterrows():
        field = by_path[record.field_path]
        expected = [1000 * (c + 1) + 20 * field.image_number + record.ObjectNumber for c in range(2)]
        assert images[row, BOX // 2, BOX // 2].tolist() == expected
        x, y = next((x, y) for n, x, y in field.objects if n == record.ObjectNumber)
        assert (record.Location_Center_X, record.Location_Center_Y) == (x, y)  # the centroid


@pytest.mark.parametrize("kind", ["png", "tif", "seg"])
def test_one_crop_per_label_at_its_centroid_with_its_area(tmp_path, kind):
    screen = write_screen(tmp_path / "fields")
    write_cellpose_masks(screen, tmp_path / "masks", kind)
    data = load_masks(
        str(screen.images),
        masks_path=str(tmp_path / "masks"),
        channel_files=PATTERNS,
        channels=CHANNELS,
        box=BOX,
        workers=1,
    )
    assert len(data.metadata) == 12 and data.channel_names == CHANNELS
    _check_identity(data, screen)
    assert (data.metadata["AreaShape_Area"] == (2 * HALF + 1) ** 2).all()
    assert sorted(data.metadata["Metadata_Plate"].unique()) == ["P1", "P2"]  # the fields' top folder


def test_masks_beside_their_fields_are_found_and_fields_without_one_are_named(tmp_path, caplog):
    screen = write_screen(tmp_path / "fields")
    masks = write_cellpose_masks(screen, tmp_path / "fields" / "P1", "png")
    for extra in masks[2:]:
        extra.unlink()  # P2's masks are not there
    for f in screen.fields[:2]:
        stem = f.files[CHANNELS[0]].name.removesuffix(f"_{CHANNELS[0]}.tif")
        (f.files[CHANNELS[0]].parent / f"{stem}_cp_masks.png").replace(
            tmp_path / "fields" / "P1" / f"{stem}_cp_masks.png"
        )
    with caplog.at_level(logging.WARNING, logger="medviz"):
        data = load_masks(str(screen.images), channel_files=PATTERNS, channels=CHANNELS, box=BOX, workers=1)
    assert "2 of 4 fields have no label image" in caplog.text and "P2/P2_A01_s1_OrigDNA.tif" in caplog.text
    assert len(data.metadata) == 6
    with pytest.raises(DataError, match="set dataset.mask_suffix"):
        load_masks(str(screen.images), mask_suffix="_labels", channel_files=PATTERNS, box=BOX, workers=1)


def test_a_seg_npy_that_would_run_code_is_refused_and_nothing_runs(tmp_path, caplog):
    screen = write_screen(tmp_path / "fields", plates=("P1",))
    write_cellpose_masks(screen, tmp_path / "masks", "seg")
    marker = tmp_path / "it-ran"
    write_hostile_seg(tmp_path / "masks" / "P1_A01_s1_seg.npy", marker)
    with caplog.at_level(logging.WARNING, logger="medviz"):
        data = load_masks(
            str(screen.images), masks_path=str(tmp_path / "masks"), channel_files=PATTERNS, box=BOX, workers=1
        )
    assert not marker.exists()
    assert "P1_A01_s1_seg.npy: refused to read (it names posix.system" in caplog.text
    assert "its field P1/P1_A01_s1_OrigDNA.tif is skipped" in caplog.text
    assert set(data.metadata["field_path"]) == {"P1/P1_B02_s1_OrigDNA.tif"}


def test_a_label_image_of_another_size_than_its_field_skips_that_field(tmp_path, caplog):
    screen = write_screen(tmp_path / "fields", plates=("P1",))
    masks = write_cellpose_masks(screen, tmp_path / "masks", "tif")
    tifffile.imwrite(masks[0], np.pad(screen.fields[0].labels, ((0, 8), (0, 0))))
    with caplog.at_level(logging.WARNING, logger="medviz"):
        data = load_masks(
            str(screen.images),
            masks_path=str(tmp_path / "masks"),
            channel_files=PATTERNS,
            box=BOX,
            mask_objects=True,
            workers=1,
        )
    assert "the label image" in caplog.text and "is 64x72 px but its field is 64x64 px" in caplog.text
    assert set(data.metadata["field_path"]) == {"P1/P1_B02_s1_OrigDNA.tif"}


def test_mask_objects_blanks_other_objects_and_the_background(tmp_path):
    screen = write_screen(tmp_path / "fields", plates=("P1",), wells=("A01",), side=48, objects=2)
    # Two objects close together: each one's box holds part of the other.
    write_cellpose_masks(screen, tmp_path / "masks", "png")
    plain = load_masks(
        str(screen.images), masks_path=str(tmp_path / "masks"), channel_files=PATTERNS, box=32, workers=1
    )
    masked = load_masks(
        str(screen.images),
        masks_path=str(tmp_path / "masks"),
        channel_files=PATTERNS,
        box=32,
        mask_objects=True,
        workers=1,
    )
    first_plain, first_masked = np.asarray(plain.images)[0, ..., 0], np.asarray(masked.images)[0, ..., 0]
    other = 1000 + 20 + 2
    assert (first_plain == other).any() and not (first_masked == other).any()
    own = first_masked == 1000 + 20 + 1
    assert own.sum() == (2 * HALF + 1) ** 2 and (first_masked[~own] == 100).all()  # the background level


def test_mask_objects_needs_label_images(tmp_path):
    tables = write_spreadsheet(write_screen(tmp_path / "screen"), tmp_path / "export")
    with pytest.raises(
        ConfigError, match="dataset.mask_objects=true needs each field's label image: use dataset=masks"
    ):
        load_cellprofiler(str(tables), mask_objects=True, box=BOX, workers=1)
