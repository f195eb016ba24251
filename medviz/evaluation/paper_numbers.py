"""The paper's published numbers (Tables 2-5), to print beside ours.

Each table maps (method, augmentation) -> {dataset: (mean, std)}; std is None where the paper
reports a single run (PCam16) and a dataset is absent where the paper has no number.
kNN and linear-evaluation accuracies are fractions (the paper prints percent).
"""

from __future__ import annotations

Cell = tuple[float, float | None]
Table = dict[tuple[str, str], dict[str, Cell]]

DATASETS = ("leukemia", "bloodmnist", "dermamnist", "pathmnist", "pcam")


def _row(values: str, scale: float = 1.0, datasets: tuple[str, ...] = DATASETS) -> dict[str, Cell]:
    """'86.3±0.7 90.4±0.3 ... 92.6' -> {dataset: (mean, std)}; '-' leaves a dataset out."""
    row: dict[str, Cell] = {}
    for dataset, text in zip(datasets, values.split(), strict=True):
        if text == "-":
            continue
        mean, _, std = text.partition("±")
        row[dataset] = (round(float(mean) * scale, 6), round(float(std) * scale, 6) if std else None)
    return row


PCT = 0.01

# Table 2: kNN accuracy (k = 15) of the 2-D embeddings.
TABLE2_KNN: Table = {
    ("tsimcne", "default"): _row("86.3±0.7 90.4±0.3 77.3±0.6 97.2±0.2 92.6", PCT),
    ("tsimcne", "rot90"): _row("94.4±0.1 93.0±0.3 77.5±0.3 98.0±0.0 93.1", PCT),
    ("tsimcne", "randrot"): _row("95.1±0.2 92.9±0.1 80.1±0.7 97.3±0.0 90.8", PCT),
    ("simclr", "default"): _row("95.0±0.1 94.0±0.1 81.9±0.1 98.1±0.0 96.3", PCT),
    ("simclr", "rot90"): _row("95.9±0.1 95.8±0.1 80.8±0.6 98.4±0.0 96.4", PCT),
    ("simclr", "randrot"): _row("95.6±0.1 95.4±0.1 82.2±0.2 97.9±0.1 94.9", PCT),
    ("byol", "default"): _row("93.1±0.4 90.6±0.0 80.1±0.9 93.0±1.0 -", PCT),
    ("tsne", "pixels"): _row("69.0 73.2 78.0 56.9 76.9", PCT),
    ("tsne", "resnet18"): _row("82.0 78.1 81.9 87.2 86.7", PCT),
    ("tsne", "resnet152"): _row("72.9 72.9 81.0 88.8 86.4", PCT),
}

# Table 3: silhouette scores of the 2-D embeddings.
TABLE3_SILHOUETTE: Table = {
    ("tsimcne", "default"): _row("0.13±0.00 0.40±0.00 0.13±0.01 0.45±0.02 0.04"),
    ("tsimcne", "rot90"): _row("0.33±0.01 0.44±0.03 0.11±0.00 0.48±0.06 0.05"),
    ("tsimcne", "randrot"): _row("0.52±0.02 0.50±0.01 0.13±0.06 0.41±0.03 0.05"),
    ("simclr", "default"): _row("0.21±0.01 0.37±0.00 0.14±0.00 0.23±0.01 0.16"),
    ("simclr", "rot90"): _row("0.23±0.01 0.35±0.02 0.14±0.01 0.25±0.01 0.13"),
    ("simclr", "randrot"): _row("0.21±0.00 0.37±0.02 0.16±0.00 0.26±0.00 0.06"),
    ("byol", "default"): _row("0.16±0.01 0.32±0.0 0.13±0.00 0.19±0.03 -"),
    ("tsne", "pixels"): _row("-0.09 0.07 0.08 -0.05 0.02"),
    ("tsne", "resnet18"): _row("-0.11 0.13 0.14 0.17 0.04"),
    ("tsne", "resnet152"): _row("-0.15 0.03 0.14 0.19 0.05"),
}

_ABLATION_DATASETS = ("leukemia", "bloodmnist", "pathmnist")

# Table 4: t-SimCNE ablations (randrot set minus one augmentation): kNN accuracy and silhouette.
TABLE4_KNN: Table = {
    ("tsimcne", "randrot"): _row("95.1±0.2 92.9±0.1 97.3±0.0", PCT, _ABLATION_DATASETS),
    ("tsimcne", "nocrop"): _row("79.7±0.6 76.0±1.1 59.8±1.1", PCT, _ABLATION_DATASETS),
    ("tsimcne", "nojitter"): _row("82.0±0.2 90.0±0.1 94.3±0.3", PCT, _ABLATION_DATASETS),
    ("tsimcne", "nogray"): _row("95.6±0.4 92.1±0.3 98.5±0.0", PCT, _ABLATION_DATASETS),
}
TABLE4_SILHOUETTE: Table = {
    ("tsimcne", "randrot"): _row("0.52±0.02 0.50±0.01 0.41±0.03", datasets=_ABLATION_DATASETS),
    ("tsimcne", "nocrop"): _row("0.14±0.00 0.20±0.01 -0.02±0.03", datasets=_ABLATION_DATASETS),
    ("tsimcne", "nojitter"): _row("-0.01±0.01 0.45±0.02 0.24±0.02", datasets=_ABLATION_DATASETS),
    ("tsimcne", "nogray"): _row("0.52±0.02 0.44±0.01 0.39±0.05", datasets=_ABLATION_DATASETS),
}

_LINEAR_DATASETS = ("bloodmnist", "dermamnist", "pathmnist")

# Table 5: linear evaluation of SimCLR's 512-D features, test-set accuracy.
TABLE5_LINEAR: Table = {
    ("simclr", "default"): _row("94.5±0.0 82.3±0.3 91.3±0.3", PCT, _LINEAR_DATASETS),
    ("simclr", "rot90"): _row("96.5±0.2 83.6±0.5 91.9±0.0", PCT, _LINEAR_DATASETS),
    ("simclr", "randrot"): _row("96.5±0.1 84.5±0.4 92.7±0.2", PCT, _LINEAR_DATASETS),
}
