"""Maps coloured by any metadata column: categories with a legend of counts, numbers with a colour ramp."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from medviz.errors import ConfigError  # noqa: E402
from medviz.text import plot_text, shown_list  # noqa: E402

#: Points with no value in the column.
MISSING_COLOUR = (0.6, 0.6, 0.6, 1.0)
#: Beyond this many categories a legend is unreadable: the smallest are drawn grey as one entry.
MAX_LEGEND = 20


def class_colours(n_classes: int) -> list[tuple[float, float, float, float]]:
    """One RGBA colour per class, in class order: tab10 up to 10 classes, tab20 beyond."""
    cmap = plt.get_cmap("tab10" if n_classes <= 10 else "tab20")
    return [cmap(slot % cmap.N) for slot in range(n_classes)]


@dataclass(frozen=True)
class Colouring:
    """Point colours (N, 4) with either legend entries (text, colour) or a numeric range (low, high)."""

    colours: np.ndarray
    legend: list[tuple[str, tuple]]
    value_range: tuple[float, float] | None = None


def colouring(values: pd.Series | np.ndarray, names: list[str] | None = None) -> Colouring:
    """Colours for ``values`` (N,): text and categories get one colour each, in order, and a legend
    with counts (the smallest grey beyond :data:`MAX_LEGEND`); numbers a viridis ramp over their range.
    ``names``: category names for integer codes (class labels; -1 = none)."""
    if names is not None:
        codes = np.asarray(values)
        series = pd.Series(pd.Categorical.from_codes(np.where(codes >= 0, codes, -1), categories=list(names)))
    else:
        series = pd.Series(values).reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(series) and not isinstance(series.dtype, pd.CategoricalDtype):
        numbers = series.to_numpy(dtype=np.float64)
        finite = np.isfinite(numbers)
        low, high = (float(numbers[finite].min()), float(numbers[finite].max())) if finite.any() else (0.0, 1.0)
        scaled = (numbers - low) / (high - low) if high > low else np.zeros_like(numbers)
        colours = plt.get_cmap("viridis")(np.where(finite, scaled, 0.0))
        colours[~finite] = MISSING_COLOUR
        return Colouring(colours, [], (low, high))
    categories = series.astype("category")
    counts = categories.value_counts(sort=False)
    order = list(counts.index)
    shown = order if len(order) <= MAX_LEGEND else list(counts.sort_values(ascending=False).index[: MAX_LEGEND - 1])
    palette = dict(zip(shown, class_colours(len(shown)), strict=True))
    colours = np.array([palette.get(v, MISSING_COLOUR) if pd.notna(v) else MISSING_COLOUR for v in categories])
    legend = [(f"{name} ({counts[name]})", palette[name]) for name in order if name in palette]
    rest = [name for name in order if name not in palette]
    if rest:
        legend.append((f"{len(rest)} more values ({int(counts[rest].sum())})", MISSING_COLOUR))
    missing = int(categories.isna().sum())
    if missing:
        legend.append((f"no value ({missing})", MISSING_COLOUR))
    return Colouring(colours.reshape(-1, 4), legend)


def column_values(metadata: pd.DataFrame | None, column: str) -> pd.Series:
    """``metadata[column]``, refused clearly when there is no such column."""
    if metadata is None:
        raise ConfigError(
            f"--colour-by {column}: this run has no metadata table; train with dataset.metadata=<table> "
            "(or a built-in set with dataset.batches=<n>)"
        )
    if column not in metadata.columns:
        raise ConfigError(
            f"--colour-by {column}: no such column; the run's metadata has {shown_list(list(metadata.columns), 30)}"
        )
    return metadata[column]


def draw_coloured(ax: plt.Axes, coords: np.ndarray, colouring_: Colouring, title: str, size: float) -> None:
    """One map panel on ``ax``: points in random order (no group painted over the others), a legend
    or colour bar to its right, the title drawn literally."""
    order = np.random.default_rng(0).permutation(len(coords))
    ax.scatter(coords[order, 0], coords[order, 1], c=colouring_.colours[order], s=size, linewidths=0, rasterized=True)
    if colouring_.value_range is not None:
        low, high = colouring_.value_range
        mappable = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(low, high))
        plt.colorbar(mappable, ax=ax, fraction=0.046, pad=0.02)
    elif colouring_.legend:
        handles = [ax.scatter([], [], color=colour, s=30) for _, colour in colouring_.legend]
        names = [plot_text(name) for name, _ in colouring_.legend]
        ax.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7)
    ax.set_title(plot_text(title), fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_coloured_maps(coords: np.ndarray, panels: list[tuple[str, Colouring]], path: Path) -> Path:
    """The same map once per (title, colouring), side by side, to ``path`` (PNG or PDF)."""
    size = float(np.clip(8000 / max(len(coords), 1), 0.3, 12))
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 6), dpi=150, squeeze=False)
    for ax, (title, colour) in zip(axes[0], panels, strict=True):
        draw_coloured(ax, coords, colour, title, size)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
