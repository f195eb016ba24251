"""TIFF / OME-TIFF files -> one image (H, W, C) with every channel, in its stored dtype (tifffile).

Layouts read (docs/datasets.md, "Fluorescence"):

* OME-TIFF and ImageJ hyperstacks: the axes in their metadata (``CYX``, ``YXC``, ...);
* channels last: one page with C samples per pixel (``YXS``), as RGB(A) photographs and most
  multi-channel writers store them;
* channels first / multi-page: one page per channel (``QYX`` or a file of 2-D pages);
* axes unknown (e.g. ``tifffile.imwrite`` of an (H, W, C) array): the axis clearly smaller than
  the other two, at either end, is read as the channels, and a log line says so.

A file that is a 3-D stack or a time series (Z or T longer than 1) is refused, because reading
one plane would silently drop the rest. An alpha channel (RGBA) is dropped with a log line.
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path

import numpy as np

from medviz.data.readers.limits import ImageTooLarge, check_image_size
from medviz.errors import DataError

log = logging.getLogger("medviz")

_CHANNEL_AXES = set("CSIQPE")
_TOLD: set[tuple[str, tuple[int, ...]]] = set()


def _pages_as_channels(tif) -> np.ndarray | None:
    """A file of several 2-D pages of one shape (each its own series): (pages, H, W); else None."""
    if len(tif.series) < 2 or tif.is_ome or tif.is_imagej:
        return None
    shapes = {s.shape for s in tif.series}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        return None
    return np.stack([s.asarray() for s in tif.series])


def _channels_last(data: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """An array with ``axes`` -> (H, W, C), refusing stacks and ambiguous layouts."""
    keep = [i for i, n in enumerate(data.shape) if n > 1 or axes[i] in "YX"]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    extra = [a for a in axes if a in "ZT"]
    if extra:
        raise DataError(
            f"{path}: a {'3-D stack' if 'Z' in extra else 'time series'} (axes {axes}, shape {data.shape}); "
            "medviz maps 2-D images and would drop all planes but one: save a projection (e.g. maximum "
            "intensity) or one plane per file"
        )
    if "Y" in axes and "X" in axes and "Q" not in axes:  # Q: pages of a file whose writer gave no axes
        others = [a for a in axes if a not in "YX"]
        if not others:
            return data[..., None]
        if len(others) == 1 and others[0] in _CHANNEL_AXES:
            return np.moveaxis(data, [axes.index("Y"), axes.index("X"), axes.index(others[0])], [0, 1, 2])
    if data.ndim == 3:  # axes unknown to the writer: the clearly smallest axis at either end holds the channels
        small = int(np.argmin(data.shape))
        if small in (0, 2) and sorted(data.shape)[0] < sorted(data.shape)[1]:
            told = (axes, data.shape)
            if told not in _TOLD:  # once per layout, not once per file
                _TOLD.add(told)
                where = "first" if small == 0 else "last"
                log.info(
                    f"{path}: no axes metadata (axes {axes}, shape {data.shape}): its {where} axis, of "
                    f"{data.shape[small]}, is read as the channels (and so in every file of this shape)"
                )
            return np.moveaxis(data, small, 2)
    raise DataError(
        f"{path}: cannot tell which axes are channels (axes {axes}, shape {data.shape}); save it as OME-TIFF with "
        "axes metadata (e.g. tifffile.imwrite(path, image, ome=True, metadata={'axes': 'CYX'}))"
    )


def read_tiff(path: Path) -> np.ndarray:
    """One TIFF file -> (H, W, C) in its stored dtype; raises DataError for layouts it cannot read."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            first = tif.pages[0]
            check_image_size(path, first.imagewidth, first.imagelength, 1, np.dtype(first.dtype or np.uint8).itemsize)
            pages = _pages_as_channels(tif)
            if pages is not None:
                return np.moveaxis(pages, 0, 2)
            series = tif.series[0]
            if len(tif.series) > 1:
                log.info(f"{path}: read its first image series {series.shape}; {len(tif.series) - 1} more ignored")
            data = series.asarray()
            axes = series.axes
            alpha = any(int(s) in (1, 2) for s in getattr(tif.pages[0], "extrasamples", ()))
    except ImageTooLarge:
        raise  # one file skipped, not a refused layout
    except (tifffile.TiffFileError, ValueError, IndexError) as err:
        raise DataError(f"{path}: not a readable TIFF ({err})") from err
    image = _channels_last(data, axes, path)
    if alpha and image.shape[-1] in (2, 4):
        log.info(f"{path}: its alpha channel was dropped (transparency is not part of the image)")
        image = image[..., :-1]
    return image


# <Channel ID="Channel:0:0" Name="DNA" ...> (any namespace prefix): read as text, never parsed as XML,
# so no entity in a user's file is ever expanded.
_OME_CHANNEL = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?Channel\b[^>]*?\bName=\"([^\"]*)\"")


def ome_channel_names(path: Path) -> tuple[str, ...] | None:
    """The channel names an OME-TIFF's metadata gives, in channel order; None when it gives none
    (not OME, unreadable, or some channel unnamed)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            metadata = tif.ome_metadata if tif.is_ome else None
    except (OSError, tifffile.TiffFileError, ValueError, IndexError):
        return None
    if not metadata:
        return None
    names = tuple(html.unescape(name).strip() for name in _OME_CHANNEL.findall(metadata))
    return names if names and all(names) else None
