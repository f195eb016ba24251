"""The dataset settings about channels and intensities, applied to whatever a source loaded.

``dataset.normalise`` / ``percentiles`` / ``intensity_range`` choose the intensity mapping
(:mod:`medviz.data.intensity`); ``dataset.channel_names`` / ``channel_colours`` name and colour
the channels in the map tools (:mod:`medviz.data.display`). Every source gets them, so a
fluorescence folder, an ``.npz`` of arrays and the built-in ``synthcells`` behave the same.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from medviz.data.display import colour_table
from medviz.data.image_arrays import ImageArrays
from medviz.data.intensity import Intensity, choose_intensity
from medviz.errors import ConfigError
from medviz.store.sidecar import kept_beside

log = logging.getLogger("medviz")


def configure_channels(
    data: ImageArrays,
    normalise: str = "auto",
    percentiles: Sequence[float] = (0.1, 99.9),
    intensity_range=None,
    channel_names: Sequence[str] | None = None,
    channel_colours: Sequence[str] | None = None,
) -> ImageArrays:
    """``data`` with its intensity mapping resolved and its channels named and coloured."""
    channels = data.channels
    names = tuple(str(n) for n in channel_names) if channel_names is not None else data.channel_names
    if names is not None and len(names) != channels:
        raise ConfigError(
            f"dataset.channel_names gives {len(names)} names, but the images of '{data.name}' have {channels} "
            "channels: give one name per channel"
        )
    colours = tuple(str(c) for c in channel_colours) if channel_colours is not None else data.channel_colours
    if colours is not None:
        colour_table(channels, colours)  # refuses a wrong count or an unknown colour now, not at the end
    intensity = cached_intensity(data, normalise, tuple(percentiles), intensity_range)
    if not (intensity.is_byte_range() and data.images.dtype.name == "uint8"):
        log.info(
            f"dataset {data.name}: {channels} channel(s), stored as {data.images.dtype}; intensities to [0, 1] by "
            f"dataset.normalise={normalise} -> {intensity.describe()}"
        )
    return replace(
        data,
        intensity=intensity,
        channel_names=names,
        channel_colours=colours,
        border_rgb=(data.border_rgb if intensity.is_byte_range() else None),
    )


def cached_intensity(data: ImageArrays, normalise: str, percentiles: tuple, intensity_range) -> Intensity:
    """The intensity mapping; dataset percentiles are computed once and kept beside the data's cache."""
    wants_percentiles = normalise == "dataset" or (normalise == "auto" and data.images.dtype.name != "uint8")
    if not wants_percentiles or data.cache_file is None:
        return choose_intensity(data.images, normalise, percentiles, intensity_range)
    low_p, high_p = (float(p) for p in percentiles)

    def compute() -> dict:
        found = choose_intensity(data.images, "dataset", percentiles, intensity_range)
        return {"low": list(found.low), "high": list(found.high)}

    saved = kept_beside(data.cache_file, f"intensity-{low_p:g}-{high_p:g}", compute)
    return Intensity("dataset", tuple(saved["low"]), tuple(saved["high"]), (low_p, high_p))
