"""Figures of a map: a scatter coloured by class with a legend and the metrics in the title."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; runs on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_map(
    coords: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...] | list[str],
    path: str | Path,
    title: str = "",
    point_size: float | None = None,
) -> Path:
    """Save a scatter of ``coords`` (N, 2) coloured by ``labels`` (N,) to ``path`` (PNG or PDF).

    Unlabelled points (label -1) are drawn in grey. Point size shrinks with N so large maps
    stay readable.
    """
    path = Path(path)
    n = len(coords)
    size = point_size if point_size is not None else float(np.clip(8000 / max(n, 1), 0.3, 12))
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(7, 6), dpi=150)
    order = np.random.default_rng(0).permutation(n)  # no class is painted over all the others
    colours = np.array([cmap(int(lab) % cmap.N) if lab >= 0 else (0.6, 0.6, 0.6, 1) for lab in labels])
    ax.scatter(coords[order, 0], coords[order, 1], c=colours[order], s=size, linewidths=0, rasterized=True)
    for index, name in enumerate(class_names):
        count = int((labels == index).sum())
        ax.scatter([], [], color=cmap(index % cmap.N), s=30, label=f"{name} ({count})")
    if len(class_names):
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
