"""Images as people look at them: C channels as one false-colour RGB composite.

Every map tool (thumbnails, ``map.png``, ``medviz figures``, ``explore``, ``qc``, the W&B table)
shows images through here. 8-bit RGB images are shown as they are. Other images are mapped to
[0, 1] with the dataset's intensity mapping, each channel is tinted with its colour, and the tints
are added (the usual composite of fluorescence viewers). Default colours: one channel gray; two
green and magenta (distinguishable with red-green colour blindness); more: blue, green, red,
magenta, cyan, yellow, orange, white -- DNA stains are by convention shown blue and usually come
first. ``dataset.channel_colours`` sets them; "green" means pure green (matplotlib's "lime"),
as in microscopy viewers, not matplotlib's dark green.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from medviz.data.intensity import Intensity
from medviz.errors import ConfigError

MANY_CHANNEL_COLOURS = ("blue", "green", "red", "magenta", "cyan", "yellow", "orange", "white")
_DEFAULTS = {1: ("gray",), 2: ("green", "magenta")}


def default_colours(channels: int) -> tuple[str, ...]:
    """The default colour name of each of ``channels`` channels."""
    if channels in _DEFAULTS:
        return _DEFAULTS[channels]
    return tuple(MANY_CHANNEL_COLOURS[c % len(MANY_CHANNEL_COLOURS)] for c in range(channels))


def colour_table(channels: int, names: Sequence[str] | None = None) -> np.ndarray:
    """float (C, 3) in [0, 1]: the RGB of each channel's colour (matplotlib names or #rrggbb)."""
    from matplotlib.colors import to_rgb

    names = tuple(names) if names is not None else default_colours(channels)
    if len(names) != channels:
        raise ConfigError(
            f"dataset.channel_colours gives {len(names)} colours, but the images have {channels} channels: "
            "give one colour per channel (e.g. [blue, green, red, magenta, cyan])"
        )
    try:
        return np.array([to_rgb("lime" if n == "green" else n) for n in names], dtype=np.float32)
    except ValueError as err:
        raise ConfigError(f"dataset.channel_colours: {err}; use matplotlib colour names or '#rrggbb'") from err


def composite(unit: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Intensities (N, H, W, C) in [0, 1] and colours (C, 3) -> uint8 RGB (N, H, W, 3), tints added."""
    rgb = np.tensordot(unit, colours, axes=([3], [0]))
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def display_rgb(
    images: np.ndarray, intensity: Intensity, colour_names: Sequence[str] | None = None, chunk: int = 4096
) -> np.ndarray:
    """Stored images (N, H, W, C) -> uint8 RGB (N, H, W, 3) to look at; 8-bit RGB is returned unchanged."""
    channels = images.shape[-1]
    if images.dtype == np.uint8 and channels == 3 and colour_names is None and intensity.is_byte_range():
        return images
    colours = colour_table(channels, colour_names)
    out = np.empty((*images.shape[:3], 3), np.uint8)
    for start in range(0, len(images), chunk):
        block = np.asarray(images[start : start + chunk])
        out[start : start + len(block)] = composite(intensity.to_unit(block), colours)
    return out


class ConvertedRows:
    """Stored images seen through a conversion applied to the rows indexed, never to all at once.

    What the map tools get for a dataset of any size: they look at a few thousand images of a
    million (thumbnails, a group's members), so converting the whole set (12 GB as 64 px RGB for a
    million crops) would cost memory for nothing. ``shape`` is (N, H, W, channels out), dtype uint8.
    """

    def __init__(self, images: np.ndarray, convert: Callable[[np.ndarray], np.ndarray], channels_out: int) -> None:
        self.images, self._convert = images, convert
        self.shape = (*images.shape[:3], channels_out)
        self.ndim, self.dtype = 4, np.dtype(np.uint8)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, int | np.integer):
            return self._convert(np.asarray(self.images[index])[None])[0]
        return self._convert(np.asarray(self.images[index]))


def display_view(
    images: np.ndarray, intensity: Intensity, colour_names: Sequence[str] | None = None
) -> np.ndarray | ConvertedRows:
    """:func:`display_rgb` of any rows, converted when indexed (8-bit RGB: the images themselves)."""
    if images.dtype == np.uint8 and images.shape[-1] == 3 and colour_names is None and intensity.is_byte_range():
        return images
    return ConvertedRows(images, partial(display_rgb, intensity=intensity, colour_names=colour_names), 3)


def unit_bytes_view(images: np.ndarray, intensity: Intensity) -> ConvertedRows:
    """:func:`unit_bytes` of any rows, converted when indexed."""
    return ConvertedRows(images, partial(unit_bytes, intensity=intensity), images.shape[-1])


def channel_legend(channels: int, names: Sequence[str] | None, colours: Sequence[str] | None) -> str:
    """'DNA: blue · actin: green · ...' for the map tools' titles; '' for 8-bit RGB without names."""
    if names is None and colours is None and channels == 3:
        return ""
    names = tuple(names) if names is not None else tuple(f"channel {c}" for c in range(channels))
    colours = tuple(colours) if colours is not None else default_colours(channels)
    return " · ".join(f"{name}: {colour}" for name, colour in zip(names, colours, strict=True))


def unit_bytes(images: np.ndarray, intensity: Intensity, chunk: int = 4096) -> np.ndarray:
    """Stored images (N, H, W, C) -> each channel's [0, 1] intensity as uint8 0-255, same shape."""
    out = np.empty(images.shape, np.uint8)
    for start in range(0, len(images), chunk):
        block = np.asarray(images[start : start + chunk])
        out[start : start + len(block)] = np.round(intensity.to_unit(block) * 255).astype(np.uint8)
    return out


def colour_hex(channels: int, names: Sequence[str] | None = None) -> list[str]:
    """'#rrggbb' of each channel's display colour."""
    from matplotlib.colors import to_hex

    return [to_hex(rgb) for rgb in colour_table(channels, names)]
