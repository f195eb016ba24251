"""Figures of a map: a scatter coloured by class with a legend and the metrics in the title."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; runs on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medviz.data.image_arrays import ImageArrays  # noqa: E402
from medviz.maps.colouring import Colouring, class_colours, colouring, plot_coloured_maps  # noqa: E402
from medviz.text import plot_text  # noqa: E402


def grouped_palette(
    labels: np.ndarray, class_names: tuple[str, ...] | list[str], small_class_fraction: float
) -> tuple[np.ndarray, list[tuple[str, tuple]]]:
    """Point colours (N, 4) and legend entries, with classes under ``small_class_fraction`` of the
    labelled images drawn in black as one entry (the paper's "OTH" for Leukemia's small classes)."""
    counts = np.bincount(labels[labels >= 0], minlength=len(class_names))
    small = counts < small_class_fraction * max(1, counts.sum())
    kept = np.flatnonzero(~small)
    palette = {int(index): colour for index, colour in zip(kept, class_colours(len(kept)), strict=True)}
    colours = np.array([palette.get(int(lab), (0, 0, 0, 1)) if lab >= 0 else (0.6, 0.6, 0.6, 1) for lab in labels])
    legend = [(f"{class_names[i]} ({counts[i]})", colour) for i, colour in palette.items()]
    if small.any():
        legend.append((f"OTH: {small.sum()} small classes ({counts[small].sum()})", (0, 0, 0, 1)))
    return colours, legend


def plot_map(
    coords: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...] | list[str],
    path: str | Path,
    title: str = "",
    point_size: float | None = None,
    overlay: np.ndarray | None = None,
    small_class_fraction: float = 0.0,
    overlay_label: str = "new images",
) -> Path:
    """Save a scatter of ``coords`` (N, 2) coloured by ``labels`` (N,) to ``path`` (PNG or PDF).

    Unlabelled points (label -1) are drawn in grey. Point size shrinks with N so large maps
    stay readable. ``overlay`` (M, 2): extra points (e.g. new images placed into the map) drawn
    in black on top of a faded map. ``small_class_fraction``: see :func:`grouped_palette`.
    """
    path = Path(path)
    n = len(coords)
    size = point_size if point_size is not None else float(np.clip(8000 / max(n, 1), 0.3, 12))
    fig, ax = plt.subplots(figsize=(7, 6), dpi=150)
    order = np.random.default_rng(0).permutation(n)  # no class is painted over all the others
    colours, legend = grouped_palette(labels, class_names, small_class_fraction)
    alpha = 0.35 if overlay is not None else 1.0
    ax.scatter(coords[order, 0], coords[order, 1], c=colours[order], s=size, linewidths=0, rasterized=True, alpha=alpha)
    # Handles and their labels are passed together: a name is drawn as written (a leading "_" would
    # otherwise hide it from an automatic legend, and "$...$" would be read as mathtext).
    handles, names = [], []
    if overlay is not None:
        handles.append(
            ax.scatter(overlay[:, 0], overlay[:, 1], c="black", s=max(size * 3, 6), marker="x", linewidths=0.8)
        )
        names.append(f"{overlay_label} ({len(overlay)})")
    for name, colour in legend:
        handles.append(ax.scatter([], [], color=colour, s=30))
        names.append(name)
    if legend:
        ax.legend(
            handles,
            [plot_text(n) for n in names],
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            frameon=False,
            fontsize=8,
        )
    ax.set_title(plot_text(title), fontsize=10)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_panels(
    panels: list[tuple[str, np.ndarray, dict]],
    labels: np.ndarray,
    class_names: tuple[str, ...] | list[str],
    path: str | Path,
    small_class_fraction: float = 0.02,
) -> Path:
    """Side-by-side maps of the same images (paper Fig. 2), each titled with its kNN and silhouette.

    Args:
        panels: (title, coords (N, 2), metrics dict) per panel, all in dataset order.
        labels: (N,) class labels shared by all panels.
        class_names: names of the label indices.
        path: PNG or PDF.
        small_class_fraction: classes with fewer than this fraction of the images are drawn in
            black and listed as one legend entry, as the paper does for Leukemia's small classes.
    """
    path = Path(path)
    colours, legend = grouped_palette(labels, class_names, small_class_fraction)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.4), dpi=150)
    for ax, (title, coords, metrics) in zip(np.atleast_1d(axes), panels, strict=True):
        _draw_panel(ax, coords, colours, title, metrics)
    handles, names = _legend_handles(legend)
    fig.legend(handles, names, loc="lower center", ncol=min(len(handles), 6), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


#: One row of :func:`plot_panel_rows`: (row title, labels (N,), class names, panels as in :func:`plot_panels`).
PanelRow = tuple[str, np.ndarray, tuple[str, ...] | list[str], list[tuple[str, np.ndarray, dict]]]


def plot_panel_rows(rows: list[PanelRow], path: str | Path) -> Path:
    """Rows of side-by-side maps, one row per dataset (each with its own classes and a legend on the
    right); panels titled with their kNN and silhouette. Rows may have different panel counts."""
    path = Path(path)
    columns = max(len(panels) for *_, panels in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(4.2 * columns + 1.6, 4.4 * len(rows)), dpi=150, squeeze=False)
    for row_axes, (row_title, labels, class_names, panels) in zip(axes, rows, strict=True):
        colours, legend = grouped_palette(labels, class_names, 0.0)
        for ax, (title, coords, metrics) in zip(row_axes, panels, strict=False):
            _draw_panel(ax, coords, colours, f"{row_title}: {title}", metrics)
        for ax in row_axes[len(panels) :]:
            ax.axis("off")
        handles, names = _legend_handles(legend)
        row_axes[len(panels) - 1].legend(
            handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7
        )
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _legend_handles(legend: list[tuple[str, tuple]]) -> tuple[list, list[str]]:
    """Legend markers and their names, drawn as written (:func:`medviz.text.plot_text`)."""
    handles = [plt.Line2D([], [], ls="", marker="o", color=colour) for _, colour in legend]
    return handles, [plot_text(name) for name, _ in legend]


def _draw_panel(ax, coords: np.ndarray, colours: np.ndarray, title: str, metrics: dict) -> None:
    """One map (N, 2) in ``ax``, points in a fixed random order, titled with kNN and silhouette."""
    order = np.random.default_rng(0).permutation(len(coords))  # no class is painted over all the others
    size = float(np.clip(8000 / max(len(coords), 1), 0.3, 12))
    ax.scatter(coords[order, 0], coords[order, 1], c=colours[order], s=size, linewidths=0, rasterized=True)
    subtitle = ""
    if "knn_accuracy" in metrics:
        subtitle = f"\nkNN {100 * metrics['knn_accuracy']:.1f}%, silhouette {metrics['silhouette']:.2f}"
    ax.set_title(plot_text(title) + subtitle, fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])


def save_map_figure(run_dir: Path, coords: np.ndarray, data: ImageArrays, label: str, metrics: dict) -> Path:
    """``map.png`` in ``run_dir``: the map coloured by class, titled with ``label``, kNN accuracy and
    silhouette; with a technical batch column, a second panel coloured by batch, titled with how
    well the map mixes batches (batch kNN against chance, iLISI)."""
    parts = [label]
    if "knn_accuracy" in metrics:
        parts.append(f"kNN {metrics['knn_accuracy']:.3f}, silhouette {metrics['silhouette']:.3f}")
    batches = data.batches()
    if batches is None:
        return plot_map(coords, data.labels, data.class_names, run_dir / "map.png", title="\n".join(parts))
    codes, names = batches
    panels: list[tuple[str, Colouring]] = [
        ("\n".join([*parts[:1], "by class", *parts[1:]]), colouring(data.labels, list(data.class_names)))
    ]
    said = f"by {data.batch_column} (technical batch)"
    if "batch_ilisi" in metrics:
        said += (
            f"\nbatch kNN {metrics['batch_knn_accuracy']:.3f} (chance {metrics['batch_knn_chance']:.3f}), "
            f"iLISI {metrics['batch_ilisi']:.3f}"
        )
    panels.append((f"{label}\n{said}", colouring(codes, list(names))))
    return plot_coloured_maps(coords, panels, run_dir / "map.png")
