"""The interactive explorer: one self-contained HTML file per run, opened from disk, no server.

The map is drawn on a canvas (not one element per point), so 100k points stay smooth. Hovering
shows the nearest point's image and metadata, a click pins it, shift-drag selects a box whose
indices export as CSV. Thumbnails travel inside the file as one JPEG atlas; above
``max_thumbnails`` images a seeded sample gets thumbnails and the other points show their
metadata only, keeping the file to a few megabytes.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import to_hex
from PIL import Image

from medviz.maps.colouring import class_colours
from medviz.text import json_for_script

TEMPLATE = Path(__file__).with_name("explorer.html")


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


@dataclass(frozen=True)
class ChannelView:
    """Per-channel thumbnails, for the explorer's channel switches and contrast control.

    Attributes:
        images: uint8 (N, H, W, C): each channel's intensity in [0, 1] times 255.
        names: one name per channel; colours: one '#rrggbb' per channel.
    """

    images: np.ndarray
    names: Sequence[str]
    colours: Sequence[str]


def thumbnail_atlas(images: np.ndarray, size: int, columns: int = 100) -> str:
    """A JPEG data URL tiling ``images`` (uint8 (n, H, W, 3), or (n, H, W) gray) as ``size`` px squares."""
    n_rows = -(-len(images) // columns)
    atlas = Image.new("RGB" if images.ndim == 4 else "L", (columns * size, max(1, n_rows) * size), "white")
    for slot, image in enumerate(images):
        tile = Image.fromarray(image)
        if tile.size != (size, size):
            tile = tile.resize((size, size), Image.Resampling.BILINEAR)
        atlas.paste(tile, ((slot % columns) * size, (slot // columns) * size))
    buffer = io.BytesIO()
    atlas.save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def metadata_columns(metadata: pd.DataFrame | None, skip: set[str] = frozenset()) -> list[dict]:
    """The metadata as the page reads it: numbers as float32 (NaN: none), anything else as int32 codes
    (-1: none) into its values as text. Columns in ``skip`` (the names already shown) are left out."""
    if metadata is None:
        return []
    out: list[dict] = []
    for column in metadata.columns:
        if column in skip:
            continue
        values = metadata[column]
        if pd.api.types.is_numeric_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype):
            out.append({"name": str(column), "kind": "number", "values": _b64(values.to_numpy(np.float32))})
        else:
            codes, categories = pd.factorize(values.astype("string"), sort=True)
            out.append(
                {
                    "name": str(column),
                    "kind": "category",
                    # int16 where the values allow it: half the bytes for the page to read
                    "codes": _b64(codes.astype(np.int16 if len(categories) < 2**15 else np.int32)),
                    "bits": 16 if len(categories) < 2**15 else 32,
                    "categories": [str(c) for c in categories],
                }
            )
    return out


def write_explorer(path: Path, *args, **kwargs) -> Path:
    """Write the explorer of a map to ``path`` (the arguments of :func:`explorer_html`)."""
    path.write_text(explorer_html(*args, **kwargs))
    return path


def explorer_html(
    coords: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    images: np.ndarray | None,
    names: Sequence[str] = (),
    title: str = "medviz map",
    max_thumbnails: int = 5000,
    seed: int = 0,
    channels: ChannelView | None = None,
    metadata: pd.DataFrame | None = None,
) -> str:
    """The explorer page of a map, one self-contained HTML text.

    Args:
        coords: (N, 2) map; labels: (N,) classes, -1 unlabelled; class_names: (C,).
        images: uint8 (N, H, W, 3) or None (no thumbnails); any array-like indexed by rows (a
            memory map, :class:`medviz.data.display.ConvertedRows`): only the thumbnails' rows are read.
        names: per-point file names (optional, shown on hover and exported).
        max_thumbnails: at most this many points carry a thumbnail (seeded sample).
        channels: per-channel thumbnails of multi-channel images: the explorer then composites
            them itself, with a switch per channel and a contrast control.
        metadata: the run's metadata (N rows): every column can colour the map, is searched, shown
            on hover and exported with a selection (text as categories, numbers as numbers).
    """
    n = len(coords)
    thumbs = np.full(n, -1, dtype=np.int32)
    atlas, size = "", 0
    if images is not None:
        rows = np.arange(n)
        if n > max_thumbnails:
            rows = np.sort(np.random.default_rng(seed).choice(n, max_thumbnails, replace=False))
        size = min(images.shape[1], 48)
        thumbs[rows] = np.arange(len(rows))
        atlas = thumbnail_atlas(np.asarray(images[rows]), size)  # only these rows are read (and converted)
    channel_atlases = []
    if channels is not None and images is not None:
        picked = np.asarray(channels.images[rows])
        channel_atlases = [thumbnail_atlas(picked[..., c], size) for c in range(len(channels.names))]
    colours = [to_hex(colour) for colour in class_colours(max(1, len(class_names)))]  # as in the map figures
    data = {
        "x": _b64(coords[:, 0].astype(np.float32)),
        "y": _b64(coords[:, 1].astype(np.float32)),
        "labels": _b64(labels.astype(np.int16)),
        "thumbs": _b64(thumbs),
        "classNames": [str(c) for c in class_names],
        "colours": colours,
        "names": [str(name) for name in names],
        "atlas": atlas,
        "thumbSize": size,
        "atlasCols": 100,
        "channelAtlases": channel_atlases,
        "channelNames": [str(n) for n in channels.names] if channel_atlases else [],
        "channelColours": [str(c) for c in channels.colours] if channel_atlases else [],
        "columns": metadata_columns(metadata, skip={"path"} if names else set()),
        "ramp": [to_hex(c) for c in plt.get_cmap("viridis")(np.linspace(0, 1, 256))],
    }
    # No file, class or channel name may close the script element, open a comment or start markup.
    payload = json_for_script(data)
    # One pass: a title that contains "__DATA__" stays a title.
    parts = {"__TITLE__": escape(title), "__DATA__": payload}
    return re.sub("__TITLE__|__DATA__", lambda found: parts[found.group()], TEMPLATE.read_text())
