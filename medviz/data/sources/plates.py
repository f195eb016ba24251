"""Single-cell maps from plates: CellProfiler and DeepProfiler exports and label masks, cut into the store.

``dataset=cellprofiler``, ``dataset=deepprofiler`` and ``dataset=masks`` (docs/plates.md) read their
tables (:mod:`medviz.data.plates`), cut one crop per object into the dataset's store and return the
crops with their metadata: every ``Metadata_*`` column of the image, ``ImageNumber``,
``ObjectNumber``, the centre and any object columns asked for. ``dataset.label``,
``dataset.batch``, ``dataset.metadata`` and ``dataset.platemap`` then name columns of these tables
(:mod:`medviz.data.prepare.metadata`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from medviz.data.image_arrays import ImageArrays
from medviz.data.plates.cellprofiler import read_cellprofiler
from medviz.data.plates.crops import CropSettings
from medviz.data.plates.dataset import crops_dataset
from medviz.data.plates.deepprofiler import read_deepprofiler
from medviz.data.plates.fields import FieldSet
from medviz.data.plates.masks import read_masks
from medviz.data.synthetic.synthcells import CHANNELS
from medviz.data.synthetic.synthplates import synthplates_folder
from medviz.errors import ConfigError


def crop_settings(box: int, size: int | None, edge: str, mask_objects: bool, masks: bool = False) -> CropSettings:
    """The crop settings of a config; masking objects needs label images (``dataset=masks``)."""
    if mask_objects and not masks:
        raise ConfigError(
            "dataset.mask_objects=true needs each field's label image: use dataset=masks with the segmentation's "
            "label images (Cellpose's _cp_masks files or CellProfiler's saved objects)"
        )
    return CropSettings(int(box), int(size or box), str(edge), bool(mask_objects))


def _name(fields: FieldSet, kind: str) -> str:
    return f"{kind}-{fields.root.name}"


def load_cellprofiler(
    path: str,
    objects: str = "Nuclei",
    channels: Sequence[str] | None = None,
    images_root: str | None = None,
    image_table: str | None = None,
    object_table: str | None = None,
    object_columns: Sequence[str] = (),
    box: int = 64,
    size: int | None = None,
    edge: str = "drop",
    mask_objects: bool = False,
    illumination: str | None = None,
    cache_dir: str | None = None,
    workers: int | None = None,
    plate: str | Sequence[str] | None = None,
) -> ImageArrays:
    """One crop per object of CellProfiler's tables at ``path`` (a folder of CSVs or a SQLite file)."""
    settings = crop_settings(box, size, edge, mask_objects)
    fields = read_cellprofiler(
        path, objects, channels, images_root, image_table, object_table, list(object_columns or ())
    )
    return crops_dataset(fields, settings, _name(fields, "cellprofiler"), illumination, cache_dir, workers, plate)


def load_deepprofiler(
    path: str,
    objects: str = "Nuclei",
    channels: Sequence[str] | None = None,
    box: int = 64,
    size: int | None = None,
    edge: str = "drop",
    mask_objects: bool = False,
    illumination: str | None = None,
    cache_dir: str | None = None,
    workers: int | None = None,
    plate: str | Sequence[str] | None = None,
) -> ImageArrays:
    """One crop per object of the DeepProfiler project at ``path``."""
    settings = crop_settings(box, size, edge, mask_objects)
    fields = read_deepprofiler(path, objects, channels)
    return crops_dataset(fields, settings, _name(fields, "deepprofiler"), illumination, cache_dir, workers, plate)


def load_masks(
    path: str,
    mask_suffix: str = "_cp_masks",
    masks_path: str | None = None,
    channel_files: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    box: int = 64,
    size: int | None = None,
    edge: str = "drop",
    mask_objects: bool = False,
    illumination: str | None = None,
    cache_dir: str | None = None,
    workers: int | None = None,
    plate: str | Sequence[str] | None = None,
) -> ImageArrays:
    """One crop per label of the fields in ``path`` and their label images (``channels`` names the channels)."""
    settings = crop_settings(box, size, edge, mask_objects, masks=True)
    fields = read_masks(path, mask_suffix, masks_path, channel_files, channels, cache_dir)
    return crops_dataset(fields, settings, _name(fields, "masks"), illumination, cache_dir, workers, plate)


def load_synthplates(
    plates: int = 3,
    wells: int = 12,
    sites: int = 2,
    batch_strength: float = 0.5,
    seed: int = 0,
    via: str = "cellprofiler",
    box: int = 48,
    size: int | None = None,
    edge: str = "drop",
    mask_objects: bool = False,
    illumination: str | None = None,
    cache_dir: str | None = None,
    workers: int | None = None,
    plate: str | Sequence[str] | None = None,
) -> ImageArrays:
    """The built-in screen (:mod:`medviz.data.synthetic.synthplates`), read through its CellProfiler
    tables (``via=cellprofiler``) or its fields and Cellpose masks (``via=masks``), with each crop's
    treatment from the plate map (``Metadata_Treatment``)."""
    folder = synthplates_folder(plates, wells, sites, batch_strength, seed, cache_dir)
    if via == "cellprofiler":
        settings = crop_settings(box, size, edge, mask_objects)
        fields = read_cellprofiler(str(folder / "cellprofiler"), object_columns=["AreaShape_Area"])
    elif via == "masks":
        settings = crop_settings(box, size, edge, mask_objects, masks=True)
        patterns = [f"*_{channel}.tif" for channel in CHANNELS]
        fields = read_masks(str(folder / "images"), "_cp_masks", str(folder / "masks"), patterns, CHANNELS, cache_dir)
    else:
        raise ConfigError(f"dataset.via={via}: choose cellprofiler or masks")
    data = crops_dataset(fields, settings, "synthplates", illumination, cache_dir, workers, plate)
    platemap = pd.read_csv(folder / "platemap.csv", dtype=str)
    if "Metadata_Well" in data.metadata.columns:
        treatment = data.metadata["Metadata_Well"].map(platemap.set_index("Metadata_Well")["Metadata_Treatment"])
    else:  # via masks: the well is in the field's file name, <Plate>_<Well>_s<Site>_<Channel>.tif
        wells_of = data.metadata["field_path"].str.split("/").str[-1].str.split("_").str[1]
        treatment = wells_of.map(platemap.set_index("Metadata_Well")["Metadata_Treatment"])
    data.metadata["Metadata_Treatment"] = treatment.to_numpy()
    return data
