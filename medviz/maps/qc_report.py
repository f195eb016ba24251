"""The quality-control report: a table of the flagged groups, their thumbnails, the map and a CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from medviz.maps.plots import plot_map
from medviz.maps.qc import Group, recall
from medviz.text import markdown_cell


def write_report(
    out_dir: Path,
    coords: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    images: np.ndarray | None,
    groups: list[Group],
    injected: np.ndarray | None = None,
    note: str = "",
) -> Path:
    """``report.md``, ``flagged.csv``, ``overview.png`` (flagged points in black) and one thumbnail strip per group.

    ``note``: how the groups were found when that differs from the default (a sampled clustering), said first.
    """
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    flagged = np.concatenate([g.indices for g in groups]) if groups else np.empty(0, int)
    plot_map(
        coords,
        labels,
        class_names,
        out_dir / "overview.png",
        title=f"{len(groups)} flagged groups",
        overlay=coords[flagged],
        overlay_label="flagged",
    )
    with open(out_dir / "flagged.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["index", "group", "kind", "label"])
        for number, group in enumerate(groups):
            writer.writerows([int(i), number, group.kind, int(labels[i])] for i in group.indices)
    lines = [f"# Quality control: {len(groups)} flagged groups ({len(flagged)} of {len(coords)} images)", ""]
    if note:
        lines += [f"Note: {note}.", ""]
    if injected is not None and injected.any():
        lines += [f"Planted images flagged (recall): {recall(groups, injected):.3f} of {int(injected.sum())}", ""]
    lines += [
        "Spacing: the members' median distance to their 10th neighbour; separation: the distance at which the group",
        "first reaches a point outside it (each point's distance raised to either point's 10th-neighbour distance,",
        "as HDBSCAN measures it); both in units of the whole map's median 10th-neighbour distance.",
        "",
        "| group | kind | images | spacing | separation | mean image correlation | classes | thumbnails |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for number, group in enumerate(groups):
        names, counts = np.unique(labels[group.indices], return_counts=True)
        classes = ", ".join(
            f"{markdown_cell(class_names[n]) if n >= 0 else 'unlabelled'} {c}"
            for n, c in zip(names, counts, strict=True)
        )
        strip = ""
        if images is not None:
            # The group's core first: the members nearest its median point in the map.
            centre = np.median(coords[group.indices], axis=0)
            core = group.indices[np.argsort(np.linalg.norm(coords[group.indices] - centre, axis=1))]
            shown = images[core[:20]]
            fig, axes = plt.subplots(1, len(shown), figsize=(len(shown), 1.1), squeeze=False)
            for ax, image in zip(axes[0], shown, strict=True):
                ax.imshow(image)
                ax.axis("off")
            fig.savefig(out_dir / f"group{number}.png", bbox_inches="tight", dpi=100)
            plt.close(fig)
            strip = f"![group {number}](group{number}.png)"
        lines.append(
            f"| {number} | {group.kind} | {group.size} | {group.spacing:.2f} | {group.separation:.2f} "
            f"| {group.correlation} | {classes} | {strip} |"
        )
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
