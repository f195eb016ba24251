"""Small screens written exactly as CellProfiler, DeepProfiler and Cellpose leave them on disk.

Every field is a flat background with square objects whose pixels encode which object they are
(``object_value``), so a test can tell from a crop's centre pixel that it is the crop of the row
it is matched to: identity, not position.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from PIL import Image

CHANNELS = ("OrigDNA", "OrigMito")
BACKGROUND = 100
HALF = 4  # objects are (2 * HALF + 1)-pixel squares


def object_value(image_number: int, object_number: int, channel: int) -> int:
    """The pixel value of one object in one channel (unique per image, object and channel)."""
    return 1000 * (channel + 1) + 20 * image_number + object_number


@dataclass
class ScreenField:
    """One written field: its metadata, its files (one per channel) and its objects (number, x, y)."""

    image_number: int
    plate: str
    well: str
    site: int
    files: dict[str, Path]
    objects: list[tuple[int, int, int]]
    labels: np.ndarray = field(repr=False)


@dataclass
class Screen:
    """A written screen: the folder of its images and its fields in ImageNumber order."""

    images: Path
    fields: list[ScreenField]
    side: int

    def expected_centre_values(self) -> dict[tuple[int, int], list[int]]:
        """(ImageNumber, ObjectNumber) -> the object's value in each channel."""
        return {
            (f.image_number, number): [object_value(f.image_number, number, c) for c in range(len(f.files))]
            for f in self.fields
            for number, _, _ in f.objects
        }


def object_centres(side: int, count: int) -> list[tuple[int, int]]:
    """(x, y) of ``count`` objects on a diagonal, away from the edges of a ``side``-pixel field."""
    step = side // (count + 1)
    return [(step * (k + 1), step * (k + 1) + (k % 2) * 3) for k in range(count)]


def write_screen(
    folder: Path,
    plates=("P1", "P2"),
    wells=("A01", "B02"),
    sites: int = 1,
    side: int = 64,
    objects: int = 3,
    dtype=np.uint16,
    first_image: int = 1,
) -> Screen:
    """16-bit single-channel TIFFs ``<folder>/<plate>/<plate>_<well>_s<site>_<channel>.tif``, one per channel."""
    fields = []
    number = first_image
    for plate in plates:
        (folder / plate).mkdir(parents=True, exist_ok=True)
        for well in wells:
            for site in range(1, sites + 1):
                labels = np.zeros((side, side), np.uint16)
                planes = [np.full((side, side), BACKGROUND, dtype) for _ in CHANNELS]
                placed = []
                for k, (x, y) in enumerate(object_centres(side, objects), start=1):
                    square = (slice(y - HALF, y + HALF + 1), slice(x - HALF, x + HALF + 1))
                    labels[square] = k
                    for c, plane in enumerate(planes):
                        plane[square] = object_value(number, k, c) if dtype == np.uint16 else 200 + k
                    placed.append((k, x, y))
                files = {}
                for c, channel in enumerate(CHANNELS):
                    files[channel] = folder / plate / f"{plate}_{well}_s{site}_{channel}.tif"
                    tifffile.imwrite(files[channel], planes[c])
                fields.append(ScreenField(number, plate, well, site, files, placed, labels))
                number += 1
    return Screen(folder, fields, side)


def _image_rows(screen: Screen, path_root: str | None) -> list[dict]:
    rows = []
    for f in screen.fields:
        row = {
            "ImageNumber": f.image_number,
            "Metadata_Plate": f.plate,
            "Metadata_Well": f.well,
            "Metadata_Site": f.site,
            "Metadata_FileLocation": f"file:{f.files[CHANNELS[0]]}",
            "Count_Nuclei": len(f.objects),
        }
        for channel, file in f.files.items():
            folder = str(file.parent) if path_root is None else f"{path_root}/{f.plate}"
            row[f"FileName_{channel}"] = file.name
            row[f"PathName_{channel}"] = folder
            row[f"URL_{channel}"] = f"file:{folder}/{file.name}"
            row[f"MD5Digest_{channel}"] = "0" * 32
            row[f"Height_{channel}"] = screen.side
            row[f"Width_{channel}"] = screen.side
        row["ExecutionTime_01Images"] = 0.01
        row["Group_Index"] = f.image_number
        row["Group_Number"] = 1
        rows.append(row)
    return rows


def _object_rows(screen: Screen) -> list[dict]:
    return [
        {
            "ImageNumber": f.image_number,
            "ObjectNumber": number,
            "AreaShape_Area": (2 * HALF + 1) ** 2,
            "AreaShape_Center_X": x,
            "AreaShape_Center_Y": y,
            "Location_Center_X": float(x),
            "Location_Center_Y": float(y),
            "Location_Center_Z": 0.0,
            "Number_Object_Number": number,
        }
        for f in screen.fields
        for number, x, y in f.objects
    ]


def write_spreadsheet(screen: Screen, folder: Path, path_root: str | None = None, objects: str = "Nuclei") -> Path:
    """ExportToSpreadsheet's ``Image.csv`` and ``<objects>.csv``; ``path_root`` writes the PathName_
    columns as the absolute folders of another machine (``<path_root>/<plate>``)."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(_image_rows(screen, path_root)).to_csv(folder / "Image.csv", index=False)
    pd.DataFrame(_object_rows(screen)).to_csv(folder / f"{objects}.csv", index=False)
    return folder


def write_merged_objects(screen: Screen, folder: Path, objects: str = "Nuclei") -> Path:
    """An object table whose columns carry the object's prefix (as merged tables do), with only
    AreaShape_Center_X/Y as centres."""
    rows = _object_rows(screen)
    table = pd.DataFrame(
        {
            "ImageNumber": [r["ImageNumber"] for r in rows],
            f"{objects}_Number_Object_Number": [r["ObjectNumber"] for r in rows],
            f"{objects}_AreaShape_Area": [r["AreaShape_Area"] for r in rows],
            f"{objects}_AreaShape_Center_X": [r["AreaShape_Center_X"] for r in rows],
            f"{objects}_AreaShape_Center_Y": [r["AreaShape_Center_Y"] for r in rows],
        }
    )
    table.to_csv(folder / f"{objects}.csv", index=False)
    return folder


def write_sqlite(screen: Screen, file: Path, path_root: str | None = None, objects: str = "Nuclei") -> Path:
    """ExportToDatabase's SQLite: ``Per_Image`` (``Image_`` before every column but ImageNumber) and
    ``Per_<objects>`` (``<objects>_`` before every column but ImageNumber, ObjectNumber as
    ``<objects>_Number_Object_Number``)."""
    images = pd.DataFrame(_image_rows(screen, path_root))
    images.columns = [c if c == "ImageNumber" else f"Image_{c}" for c in images.columns]
    found = pd.DataFrame(_object_rows(screen)).drop(columns=["ObjectNumber"])
    found.columns = [c if c == "ImageNumber" else f"{objects}_{c}" for c in found.columns]
    found.insert(0, "TableNumber", 0)
    with sqlite3.connect(file) as db:
        images.to_sql("Per_Image", db, index=False)
        found.to_sql(f"Per_{objects}", db, index=False)
        db.execute("CREATE TABLE Experiment (experiment_id INTEGER, name TEXT)")
    return file


def write_deepprofiler(screen: Screen, project: Path, objects: str = "Nuclei", missing_locations: int = 0) -> Path:
    """A DeepProfiler project: ``inputs/images/<plate>/<file>``, ``inputs/metadata/index.csv`` (one
    column per channel with the path relative to ``inputs/images``) and
    ``inputs/locations/<plate>/<well>-<site>-<objects>.csv``; the last ``missing_locations`` images get none."""
    inputs = project / "inputs"
    rows = []
    for i, f in enumerate(screen.fields):
        row = {"Metadata_Plate": f.plate, "Metadata_Well": f.well, "Metadata_Site": f.site}
        for channel, file in f.files.items():
            target = inputs / "images" / f.plate / file.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.read_bytes())
            row[channel.removeprefix("Orig")] = f"{f.plate}/{file.name}"
        row["Treatment"] = "DMSO" if i % 2 == 0 else "cpd_A"
        row["Replicate"] = 1
        rows.append(row)
        if i >= len(screen.fields) - missing_locations:
            continue
        locations = inputs / "locations" / f.plate / f"{f.well}-{f.site}-{objects}.csv"
        locations.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                f"{objects}_Location_Center_X": [x for _, x, _ in f.objects],
                f"{objects}_Location_Center_Y": [y for _, _, y in f.objects],
            }
        ).to_csv(locations, index=False)
    (inputs / "metadata").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(inputs / "metadata" / "index.csv", index=False)
    (project / "inputs" / "config").mkdir(parents=True, exist_ok=True)
    return project


def write_cellpose_masks(screen: Screen, folder: Path, kind: str = "png") -> list[Path]:
    """Each field's labels as Cellpose writes them: ``<stem>_cp_masks.png`` (16-bit), ``.tif``, or
    ``<stem>_seg.npy`` (a pickled dict with ``masks``, ``outlines``, ``chan_choose``, ``filename``...);
    ``<stem>`` is the field's first channel file name up to ``_<channel>.tif``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for f in screen.fields:
        stem = f.files[CHANNELS[0]].name.removesuffix(f"_{CHANNELS[0]}.tif")
        if kind == "png":
            path = folder / f"{stem}_cp_masks.png"
            Image.fromarray(f.labels).save(path)
        elif kind == "tif":
            path = folder / f"{stem}_cp_masks.tif"
            tifffile.imwrite(path, f.labels)
        else:
            path = folder / f"{stem}_seg.npy"
            saved = {
                "masks": f.labels,
                "outlines": np.zeros_like(f.labels),
                "chan_choose": [0, 0],
                "filename": str(f.files[CHANNELS[0]]),
                "flows": [np.zeros((2, 2), np.float32)],
                "est_diam": 9.0,
                "ismanual": np.zeros(len(f.objects), bool),
            }
            np.save(path, np.array(saved, dtype=object), allow_pickle=True)
        written.append(path)
    return written


class _Hostile:
    """Unpickling this runs ``os.system``: what a crafted ``_seg.npy`` could do to a careless reader."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def write_hostile_seg(path: Path, marker: Path) -> Path:
    """A ``_seg.npy`` whose pickle would create ``marker`` if it were unpickled freely."""
    array = np.empty((), dtype=object)
    array[()] = {"masks": _Hostile(marker)}
    with open(path, "wb") as out:
        np.lib.format.write_array(out, array, allow_pickle=True)
    return path


def assert_crops_match_their_rows(data, screen: Screen, box: int) -> None:
    """Every crop's centre pixel is the value of the object its metadata row names (identity, not order)."""
    expected = screen.expected_centre_values()
    centre = box // 2
    images = np.asarray(data.images)
    seen = set()
    rows = zip(data.metadata["ImageNumber"], data.metadata["ObjectNumber"], strict=True)
    for row, (image, number) in enumerate(rows):
        key = (int(image), int(number))
        assert images[row, centre, centre].tolist() == expected[key], key
        seen.add(key)
    assert len(seen) == len(data.metadata)
