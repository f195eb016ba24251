"""Publication figures of a map (paper Figs. 3-5): classes, thumbnails at chosen points, a grid of images.

Every figure is written as PNG (for screens) and PDF (vector points, for papers).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.offsetbox import AnnotationBbox, OffsetImage  # noqa: E402

from medviz.maps.colouring import colouring, plot_coloured_maps  # noqa: E402
from medviz.maps.plots import grouped_palette, plot_map  # noqa: E402
from medviz.text import plot_text  # noqa: E402


def save_both(fig: plt.Figure, stem: Path) -> list[Path]:
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, bbox_inches="tight", dpi=200)
    plt.close(fig)
    return paths


def spread_points(coords: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` points spread over the map (farthest-point sampling from a seeded start)."""
    n = min(n, len(coords))
    chosen = [int(np.random.default_rng(seed).integers(len(coords)))]
    distance = np.linalg.norm(coords - coords[chosen[0]], axis=1)
    for _ in range(n - 1):
        chosen.append(int(distance.argmax()))
        distance = np.minimum(distance, np.linalg.norm(coords - coords[chosen[-1]], axis=1))
    return np.array(chosen)


def thumbnail_map(
    coords: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    images: np.ndarray,
    stem: Path,
    n_thumbnails: int = 12,
    seed: int = 0,
    channel_legend: str = "",
) -> list[Path]:
    """The map with image thumbnails around it, each linked to its point (paper Fig. 4), with a legend
    of the classes (the frames' colours) and, for multi-channel images, which colour shows which channel.

    Args:
        coords: (N, 2) map; labels: (N,) classes (-1 unlabelled); images: uint8 (N, H, W, 3).
        n_thumbnails: how many points get a thumbnail (spread over the map).
        channel_legend: e.g. "DNA green, Mito magenta" ('' for RGB images).
    """
    colours, legend = grouped_palette(labels, class_names, 0.02)
    fig, ax = plt.subplots(figsize=(8, 8))
    size = float(np.clip(8000 / max(len(coords), 1), 0.3, 12))
    ax.scatter(coords[:, 0], coords[:, 1], c=colours, s=size, linewidths=0, rasterized=True)
    centre = coords.mean(axis=0)
    reach = np.abs(coords - centre).max()
    chosen = spread_points(coords, n_thumbnails, seed)
    # Thumbnails sit on a circle around the map, evenly spaced in the order of their points'
    # angles, so they neither overlap nor cross each other's lines.
    angles = np.arctan2(*(coords[chosen] - centre).T[::-1])
    order = np.argsort(angles)
    slots = angles[order[0]] + 2 * np.pi * np.arange(len(chosen)) / len(chosen)
    for index, angle in zip(chosen[order], slots, strict=True):
        box = AnnotationBbox(
            OffsetImage(images[index], zoom=max(1.0, 40 / images.shape[1])),
            coords[index],
            xybox=centre + np.array([np.cos(angle), np.sin(angle)]) * reach * 1.3,
            xycoords="data",
            arrowprops={"arrowstyle": "-", "color": "0.3", "linewidth": 0.6},
            bboxprops={"edgecolor": colours[index], "linewidth": 2},
        )
        ax.add_artist(box)
    ax.set_xlim(centre[0] - reach * 1.5, centre[0] + reach * 1.5)
    ax.set_ylim(centre[1] - reach * 1.5, centre[1] + reach * 1.5)
    ax.set_aspect("equal")
    ax.axis("off")
    _legends(fig, legend, channel_legend)
    return save_both(fig, stem)


def _legends(fig: plt.Figure, legend: list, channel_legend: str) -> None:
    """The classes' colours below a figure, and the channels' colours under them; names drawn as written."""
    if legend:
        handles = [plt.Line2D([], [], marker="s", linestyle="", color=colour, markersize=8) for _, colour in legend]
        fig.legend(
            handles,
            [plot_text(name) for name, _ in legend],
            loc="lower center",
            ncol=min(len(legend), 4),
            frameon=False,
            fontsize=8,
            bbox_to_anchor=(0.5, -0.02),
        )
    if channel_legend:
        fig.text(0.5, -0.06, plot_text(f"channels: {channel_legend}"), ha="center", fontsize=8)


def grid_cells(coords: np.ndarray, grid: int, min_points: int) -> list[tuple[int, int, int]]:
    """(row, column, index of the point nearest the cell centre) for each cell with >= ``min_points`` points."""
    low, high = coords.min(axis=0), coords.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    cell = np.minimum(((coords - low) / span * grid).astype(int), grid - 1)
    chosen = []
    for row in range(grid):
        for col in range(grid):
            inside = np.flatnonzero((cell[:, 0] == col) & (cell[:, 1] == row))
            if len(inside) < min_points:
                continue
            centre = low + (np.array([col, row]) + 0.5) * span / grid
            nearest = inside[np.linalg.norm(coords[inside] - centre, axis=1).argmin()]
            chosen.append((row, col, int(nearest)))
    return chosen


def grid_map(
    coords: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    images: np.ndarray,
    stem: Path,
    grid: int = 10,
    min_points: int = 5,
    channel_legend: str = "",
) -> tuple[list[Path], int]:
    """A ``grid`` x ``grid`` layout over the map: in each square with enough points, the image
    nearest its centre, framed in its class colour (paper Fig. 5b), with the legends of
    :func:`thumbnail_map`. Returns the paths and the number of images drawn."""
    colours, legend = grouped_palette(labels, class_names, 0.02)
    cells = grid_cells(coords, grid, min_points)
    fig, axes = plt.subplots(grid, grid, figsize=(grid, grid))
    for ax in axes.ravel():
        ax.axis("off")
    for row, col, index in cells:
        ax = axes[grid - 1 - row, col]  # the map's y grows upwards
        ax.imshow(images[index])
        for spine in ax.spines.values():
            spine.set_visible(True)
            spine.set_color(colours[index])
            spine.set_linewidth(3)
        ax.axis("on")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    _legends(fig, legend, channel_legend)
    return save_both(fig, stem), len(cells)


def all_figures(
    coords: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    images: np.ndarray,
    out_dir: Path,
    title: str,
    colour_by: tuple[str, pd.Series] | None = None,
    channel_legend: str = "",
) -> list[Path]:
    """The class map, the thumbnail map and the image grid, each as PNG and PDF, into ``out_dir``.

    ``colour_by``: (column name, its values (N,)) -- the map is drawn twice, by class and by that column.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if colour_by is None:
        paths = [
            plot_map(coords, labels, class_names, out_dir / f"map.{ext}", title=title, small_class_fraction=0.02)
            for ext in ("png", "pdf")
        ]
    else:
        column, values = colour_by
        panels = [
            (f"{title}\nby class", colouring(labels, list(class_names))),
            (f"{title}\nby {column}", colouring(values)),
        ]
        paths = [plot_coloured_maps(coords, panels, out_dir / f"map.{ext}") for ext in ("png", "pdf")]
    paths += thumbnail_map(
        coords, labels, class_names, images, out_dir / "map_thumbnails", channel_legend=channel_legend
    )
    grid_paths, _ = grid_map(coords, labels, class_names, images, out_dir / "map_grid", channel_legend=channel_legend)
    return paths + grid_paths
