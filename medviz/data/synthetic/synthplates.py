"""Built-in, offline screen: plates of fields of view, a CellProfiler export and Cellpose masks.

``dataset=synthplates`` writes, once per seed and size, what a small Cell Painting screen leaves on
disk, and reads it back through the same route a user's screen takes (``dataset=cellprofiler``):

* ``images/<Plate>/<Plate>_<Well>_s<Site>_<Channel>.tif``: 16-bit fields, one file per channel
  (the five stains of :mod:`medviz.data.synthetic.synthcells`), cells on a jittered grid;
* ``cellprofiler/Image.csv`` and ``cellprofiler/Nuclei.csv``: ExportToSpreadsheet's tables
  (``ImageNumber``, ``Metadata_Plate/Well/Site``, ``FileName_/PathName_<Channel>``; ``ObjectNumber``,
  ``Location_Center_X/Y`` of each nucleus, ``AreaShape_Area``);
* ``masks/<Plate>_<Well>_s<Site>_cp_masks.png``: Cellpose-style 16-bit label images of the cells;
* ``platemap.csv``: ``Metadata_Well`` -> ``Metadata_Treatment``, the same layout on every plate.

Treatments differ in morphology (DMSO: normal cells; cpd_A: binucleate; cpd_B: fragmented
mitochondria; cpd_C: mitochondria 2.5x brighter, a phenotype that lives in absolute intensity), and
plates differ technically: each plate has its own per-channel gain and offset and a vignetted
illumination of its own strength (``batch_strength``), so the plate is visible in a map until it
is removed (``dataset.illumination=plate`` corrects the vignetting).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from medviz.data.synthetic.synthcells import BACKGROUND, CHANNELS, READ_NOISE, render_cell
from medviz.store.location import cache_key, default_cache_dir

log = logging.getLogger("medviz")

#: Treatment -> the synthcells phenotype its cells show.
TREATMENTS = {"DMSO": "normal", "cpd_A": "binucleate", "cpd_B": "fragmented_mito", "cpd_C": "mito_bright"}
ROWS = "ABCDEFGH"
#: Bumped when what is written changes, so screens of the old kind are written again.
GENERATOR_VERSION = 2


def _well_names(wells: int) -> list[str]:
    return [f"{ROWS[i // 12]}{i % 12 + 1:02d}" for i in range(wells)]


def _field(
    phenotype: str, side: int, grid: int, cell: int, gain: np.ndarray, offset: np.ndarray, vignette: float, rng
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float, int]]]:
    """One field: 16-bit (side, side, 5), labels (side, side) uint16, and (x, y, area) per nucleus."""
    signal = np.zeros((side, side, len(CHANNELS)))
    labels = np.zeros((side, side), np.uint16)
    nuclei = []
    margin = side // 40  # cells keep off the edge, but not all of them: a few boxes cross it, as in real fields
    spacing = (side - 2 * margin) / grid
    for number, (i, j) in enumerate(((i, j) for i in range(grid) for j in range(grid)), start=1):
        cy = int(margin + (i + 0.5) * spacing + rng.uniform(-0.25, 0.25) * spacing)
        cx = int(margin + (j + 0.5) * spacing + rng.uniform(-0.25, 0.25) * spacing)
        patch = render_cell(phenotype, cell, rng)
        top, left = cy - cell // 2, cx - cell // 2
        rows = slice(max(top, 0), min(top + cell, side))
        cols = slice(max(left, 0), min(left + cell, side))
        inner = (slice(rows.start - top, rows.stop - top), slice(cols.start - left, cols.stop - left))
        signal[rows, cols] += patch[inner]
        body = patch[inner][..., 1:3].sum(-1) > 0.05 * patch[..., 1:3].sum(-1).max()
        labels[rows, cols][body & (labels[rows, cols] == 0)] = number
        dna = patch[inner][..., 0]
        weight = dna.sum()
        if weight <= 0:
            continue
        ys, xs = np.mgrid[rows, cols]
        nuclei.append(
            (float((xs * dna).sum() / weight), float((ys * dna).sum() / weight), int((dna > dna.max() / 2).sum()))
        )
    grid_y, grid_x = (np.mgrid[0:side, 0:side] + 0.5) / side * 2 - 1
    illumination = 1 - vignette * (grid_x**2 + grid_y**2) / 2  # bright centre, dim corners
    expected = signal * gain * illumination[..., None]
    counts = rng.poisson(np.maximum(expected, 0)) + BACKGROUND + offset + rng.normal(0, READ_NOISE, expected.shape)
    return np.clip(np.round(counts), 0, 65535).astype(np.uint16), labels, nuclei


def write_synthplates(
    folder: Path,
    plates: int = 3,
    wells: int = 12,
    sites: int = 2,
    side: int = 320,
    cells: int = 5,
    cell_size: int = 48,
    batch_strength: float = 0.5,
    seed: int = 0,
    final: Path | None = None,
) -> Path:
    """Write the screen into ``folder`` (see the module's docstring); returns the CellProfiler tables' folder.

    ``final`` is where the folder will be once written (it is written under another name and renamed, so a
    killed process never leaves half a screen): the image table's ``PathName_`` columns point there.
    """
    import tifffile
    from PIL import Image

    rng = np.random.default_rng(seed)
    plate_rng = np.random.default_rng([seed, 9_241])  # plates' own stream: the cells stay those of the seed
    treatments = list(TREATMENTS)
    well_names = _well_names(wells)
    layout = {well: treatments[i % len(treatments)] for i, well in enumerate(well_names)}
    image_rows, object_rows = [], []
    for p in range(plates):
        plate = f"Plate{p + 1}"
        gain = np.exp(plate_rng.normal(0, 0.3 * batch_strength, len(CHANNELS)))
        offset = plate_rng.normal(0, 60 * batch_strength, len(CHANNELS))
        vignette = float(plate_rng.uniform(0.2, 0.6))
        (folder / "images" / plate).mkdir(parents=True, exist_ok=True)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        for well in well_names:
            for site in range(1, sites + 1):
                image, labels, nuclei = _field(
                    TREATMENTS[layout[well]], side, cells, cell_size, gain, offset, vignette, rng
                )
                number = len(image_rows) + 1
                row = {"ImageNumber": number, "Metadata_Plate": plate, "Metadata_Well": well, "Metadata_Site": site}
                for c, channel in enumerate(CHANNELS):
                    name = f"{plate}_{well}_s{site}_{channel}.tif"
                    tifffile.imwrite(folder / "images" / plate / name, image[..., c])
                    row[f"FileName_Orig{channel}"] = name
                    row[f"PathName_Orig{channel}"] = str((final or folder) / "images" / plate)
                row["Count_Nuclei"] = len(nuclei)
                image_rows.append(row)
                Image.fromarray(labels).save(folder / "masks" / f"{plate}_{well}_s{site}_cp_masks.png")
                for obj, (x, y, area) in enumerate(nuclei, start=1):
                    object_rows.append(
                        {
                            "ImageNumber": number,
                            "ObjectNumber": obj,
                            "AreaShape_Area": area,
                            "Location_Center_X": round(x, 3),
                            "Location_Center_Y": round(y, 3),
                            "Number_Object_Number": obj,
                        }
                    )
    tables = folder / "cellprofiler"
    tables.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(image_rows).to_csv(tables / "Image.csv", index=False)
    pd.DataFrame(object_rows).to_csv(tables / "Nuclei.csv", index=False)
    pd.DataFrame({"Metadata_Well": well_names, "Metadata_Treatment": [layout[w] for w in well_names]}).to_csv(
        folder / "platemap.csv", index=False
    )
    return tables


def synthplates_folder(
    plates: int = 3,
    wells: int = 12,
    sites: int = 2,
    batch_strength: float = 0.5,
    seed: int = 0,
    cache_dir: str | None = None,
) -> Path:
    """The built-in screen's folder in the cache, written on first use (complete or not at all)."""
    key = cache_key(plates=plates, wells=wells, sites=sites, strength=batch_strength, seed=seed, v=GENERATOR_VERSION)
    folder = Path(cache_dir or default_cache_dir()) / "synthplates" / f"screen-{key}"
    if (folder / "complete").is_file():
        return folder
    partial = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    log.info(f"synthplates: writing {plates} plates x {wells} wells x {sites} sites to {folder} (once)")
    write_synthplates(partial, plates, wells, sites, batch_strength=batch_strength, seed=seed, final=folder)
    (partial / "complete").write_text("")
    try:
        partial.rename(folder)
    except OSError:  # another process wrote it first: theirs is as good
        shutil.rmtree(partial, ignore_errors=True)
    return folder
