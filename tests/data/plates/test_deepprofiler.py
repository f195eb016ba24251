"""DeepProfiler's project layout (index.csv, images, per-image locations files) cut into crops by identity."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from medviz.data.sources.plates import load_deepprofiler
from medviz.errors import DataError
from tests.helpers.plates import write_deepprofiler, write_screen

BOX = 16


def _values_by_key(screen):
    """'<plate>/<well>-<site>' and ObjectNumber -> the object's value in each channel."""
    return {
        (f"{f.plate}/{f.well}-{f.site}", number): [1000 * (c + 1) + 20 * f.image_number + number for c in range(2)]
        for f in screen.fields
        for number, _, _ in f.objects
    }


def test_a_project_gives_one_crop_per_location_with_the_index_metadata(tmp_path, caplog):
    screen = write_screen(tmp_path / "screen")
    project = write_deepprofiler(screen, tmp_path / "project", missing_locations=1)
    with caplog.at_level(logging.INFO, logger="medviz"):
        data = load_deepprofiler(str(project), box=BOX, workers=1)
    assert "1 of 4 images have no locations file" in caplog.text
    assert data.channel_names == ("DNA", "Mito")  # the index's channel columns, in their order
    meta = data.metadata
    assert len(meta) == 9 and {"Metadata_Plate", "Metadata_Well", "Metadata_Site", "Treatment"} <= set(meta.columns)
    expected = _values_by_key(screen)
    images = np.asarray(data.images)
    for row, record in meta.iterrows():
        key = f"{record.Metadata_Plate}/{record.Metadata_Well}-{record.Metadata_Site}"
        assert images[row, BOX // 2, BOX // 2].tolist() == expected[(key, record.ObjectNumber)]
    assert meta["Nuclei_Location_Center_X"].notna().all()


def test_the_inputs_folder_itself_is_accepted_and_a_wrong_folder_is_explained(tmp_path):
    project = write_deepprofiler(write_screen(tmp_path / "screen"), tmp_path / "project")
    assert len(load_deepprofiler(str(project / "inputs"), box=BOX, workers=1).metadata) == 12
    with pytest.raises(DataError, match=r"not a DeepProfiler project \(no inputs/metadata/index.csv\)"):
        load_deepprofiler(str(tmp_path / "screen"), box=BOX, workers=1)


def test_locations_of_another_object_name_point_to_dataset_objects(tmp_path):
    project = write_deepprofiler(write_screen(tmp_path / "screen"), tmp_path / "project", objects="Cells")
    with pytest.raises(DataError, match=r"no <Plate>/<Well>-<Site>-Nuclei.csv locations file"):
        load_deepprofiler(str(project), box=BOX, workers=1)
    assert len(load_deepprofiler(str(project), objects="Cells", box=BOX, workers=1).metadata) == 12


def test_a_location_that_is_not_a_number_names_the_file_and_row(tmp_path):
    project = write_deepprofiler(write_screen(tmp_path / "screen"), tmp_path / "project")
    file = project / "inputs" / "locations" / "P2" / "A01-1-Nuclei.csv"
    table = pd.read_csv(file)
    table.loc[1, "Nuclei_Location_Center_Y"] = np.nan
    table.to_csv(file, index=False)
    with pytest.raises(DataError, match=r"P2/A01-1-Nuclei.csv: row 3 has no centre"):
        load_deepprofiler(str(project), box=BOX, workers=1)


def test_a_duplicated_image_in_the_index_is_refused(tmp_path):
    project = write_deepprofiler(write_screen(tmp_path / "screen"), tmp_path / "project")
    index = project / "inputs" / "metadata" / "index.csv"
    table = pd.read_csv(index)
    pd.concat([table, table.iloc[[0]]]).to_csv(index, index=False)
    with pytest.raises(DataError, match=r"index.csv: image P1/A01-1 \(plate/well-site\) appears more than once"):
        load_deepprofiler(str(project), box=BOX, workers=1)
