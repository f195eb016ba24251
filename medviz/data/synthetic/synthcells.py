"""Built-in, offline fluorescence data: synthetic single-cell crops, 5 channels, 16-bit.

Each crop is one cell at a random orientation and position, rendered in five stains as a cell
painting assay images them -- DNA (nucleus), actin (cortex, fibres), ER, mitochondria, Golgi --
on a camera: a background offset of ~100 counts, Poisson shot noise and Gaussian read noise,
stored as uint16. Seven phenotypes differ in particular channels:

=================  ===========================================================================
normal             one oval nucleus, actin cortex, perinuclear ER, tubular mitochondria,
                   a compact Golgi beside the nucleus
mito_bright        *exactly* normal, but the mitochondria channel is 2.5x brighter: the pair
                   (normal, mito_bright) differs only in one channel's absolute intensity, so
                   scaling every image to its own range (``dataset.normalise=image``) erases it
binucleate         two nuclei (DNA)
stress_fibres      parallel actin fibres across the cell (actin)
er_aggregates      bright ER clumps in the cytoplasm (ER)
fragmented_mito    many small round mitochondria instead of tubules (mitochondria)
golgi_dispersed    Golgi scattered through the cytoplasm (Golgi)
=================  ===========================================================================

Every cell also varies in size, shape, staining (each channel x0.85-1.15) and noise, so no
phenotype is a single template. A montage of the classes is in docs/datasets.md.
"""

from __future__ import annotations

import numpy as np

from medviz.data.image_arrays import ImageArrays
from medviz.data.synthetic.batches import BATCH_COLUMN, plant_batches

CLASSES = (
    "normal",
    "mito_bright",
    "binucleate",
    "stress_fibres",
    "er_aggregates",
    "fragmented_mito",
    "golgi_dispersed",
)
CHANNELS = ("DNA", "actin", "ER", "mito", "Golgi")
#: Peak signal of each stain in camera counts (above the background).
GAIN = np.array([3000.0, 1500.0, 1200.0, 1000.0, 1500.0])
MITO_BRIGHT_FACTOR = 2.5
BACKGROUND = 100.0
READ_NOISE = 10.0


def _blobs(u, v, centres, sigmas, angles) -> np.ndarray:
    """Sum of anisotropic Gaussians (K blobs) on the grid (H, W): centres (K, 2), sigmas (K, 2), angles (K,)."""
    if len(centres) == 0:
        return np.zeros_like(u)
    du = u[None] - centres[:, 0, None, None]
    dv = v[None] - centres[:, 1, None, None]
    cos, sin = np.cos(angles)[:, None, None], np.sin(angles)[:, None, None]
    along = du * cos + dv * sin
    across = -du * sin + dv * cos
    return np.exp(-0.5 * ((along / sigmas[:, 0, None, None]) ** 2 + (across / sigmas[:, 1, None, None]) ** 2)).sum(0)


def _points_in(rng, count: int, a: float, b: float, inner: float) -> np.ndarray:
    """``count`` points inside the ellipse (a, b) and outside radius ``inner`` (the nucleus), (count, 2)."""
    radius = np.sqrt(rng.uniform(inner**2, 0.85**2, count))
    theta = rng.uniform(0, 2 * np.pi, count)
    return np.stack([radius * a * np.cos(theta), radius * b * np.sin(theta)], axis=1)


def render_cell(phenotype: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One cell -> float64 (size, size, 5) expected camera signal (no noise, no background)."""
    grid = (np.arange(size) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(grid, grid, indexing="ij")
    angle = rng.uniform(0, 2 * np.pi)
    cx, cy = rng.uniform(-0.08, 0.08, 2)
    u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)  # cell frame: u along the long axis
    v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
    a = rng.uniform(0.6, 0.78)
    b = a * rng.uniform(0.72, 0.92)
    cell_r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    cell = 1 / (1 + np.exp((cell_r - 1) / 0.04))

    if phenotype == "binucleate":
        nuclei = [(-0.3 * a, 0.0, 0.24 * a), (0.3 * a, 0.0, 0.24 * a)]
    else:
        nuclei = [(rng.uniform(-0.08, 0.08) * a, 0.0, rng.uniform(0.33, 0.4) * a)]
    nucleus = np.zeros_like(u)
    for nu, nv, radius in nuclei:
        r = np.sqrt(((u - nu) / radius) ** 2 + ((v - nv) / (radius * 0.85)) ** 2)
        nucleus = np.maximum(nucleus, 1 / (1 + np.exp((r - 1) / 0.08)))
    texture = 0.85 + 0.3 * rng.random()  # chromatin density of this cell
    dna = nucleus * texture
    cytoplasm = cell * (1 - nucleus)

    actin = 0.9 * np.exp(-(((cell_r - 0.95) / 0.07) ** 2)) + 0.1 * cytoplasm
    if phenotype == "stress_fibres":
        tilt = rng.uniform(-0.3, 0.3)
        across = -u * np.sin(tilt) + v * np.cos(tilt)
        for offset in np.linspace(-0.6, 0.6, 5) * b:
            actin = actin + 0.8 * cell * np.exp(-(((across - offset) / 0.035) ** 2))

    nucleus_distance = np.maximum(cell_r - 0.35, 0)
    er = cytoplasm * np.exp(-nucleus_distance / 0.35)
    if phenotype == "er_aggregates":
        count = int(rng.integers(3, 6))
        centres = _points_in(rng, count, a, b, inner=0.5)
        er = er + 1.6 * cell * _blobs(u, v, centres, np.full((count, 2), 0.06), np.zeros(count))

    if phenotype == "fragmented_mito":
        count = int(rng.integers(35, 50))
        sigmas = np.full((count, 2), 0.035)
    else:
        count = int(rng.integers(10, 16))
        sigmas = np.stack([rng.uniform(0.12, 0.2, count), np.full(count, 0.03)], axis=1)
    centres = _points_in(rng, count, a, b, inner=0.5)
    mito = np.clip(cytoplasm * _blobs(u, v, centres, sigmas, rng.uniform(0, np.pi, count)), 0, 1.2)
    if phenotype == "mito_bright":
        mito = mito * MITO_BRIGHT_FACTOR

    if phenotype == "golgi_dispersed":
        count = int(rng.integers(12, 18))
        centres = _points_in(rng, count, a, b, inner=0.5)
    else:  # a compact ribbon on one side of the nucleus
        count = 6
        side = rng.choice([-1.0, 1.0])
        arc = rng.uniform(-0.6, 0.6) + np.linspace(-0.5, 0.5, count)
        radius = nuclei[0][2] + 0.12
        centres = np.stack([nuclei[0][0] + side * radius * np.cos(arc), radius * np.sin(arc) * 0.85], axis=1)
    golgi = cell * _blobs(u, v, centres, np.full((count, 2), 0.045), np.zeros(count))

    stains = np.stack([dna, actin, er, mito, golgi], axis=-1)
    staining = rng.uniform(0.85, 1.15, len(CHANNELS))  # each stain's strength varies cell to cell
    return stains * GAIN * staining


def camera(signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Expected signal (counts) -> a 16-bit camera image: offset, shot noise, read noise."""
    offset = BACKGROUND + rng.uniform(-10, 10, signal.shape[-1])
    counts = rng.poisson(np.maximum(signal, 0)) + offset + rng.normal(0, READ_NOISE, signal.shape)
    return np.clip(np.round(counts), 0, 65535).astype(np.uint16)


def load_synthcells(
    n_images: int = 2100, size: int = 32, seed: int = 0, batches: int = 0, batch_strength: float = 0.5
) -> ImageArrays:
    """``n_images`` synthetic cells, an equal share of each of the 7 phenotypes, uint16 (N, size, size, 5);
    with ``batches`` > 0, split into that many technical batches with planted gain, offset,
    bleed-through and focus effects (:mod:`medviz.data.synthetic.batches`; metadata column ``batch``)."""
    if n_images < len(CLASSES):
        raise ValueError(f"synthcells needs at least {len(CLASSES)} images (one per phenotype), got {n_images}")
    rng = np.random.default_rng(seed)
    labels = np.arange(n_images) % len(CLASSES)
    rng.shuffle(labels)
    images = np.empty((n_images, size, size, len(CHANNELS)), np.uint16)
    for i, label in enumerate(labels):
        images[i] = camera(render_cell(CLASSES[label], size, rng), rng)
    metadata = None
    if batches:
        phenotypes = ("phenotype", np.asarray(CLASSES)[labels])
        images, metadata = plant_batches(images, batches, batch_strength, seed, stain=False, classes=phenotypes)
    return ImageArrays(
        images=images,
        labels=labels.astype(np.int64),
        class_names=CLASSES,
        name="synthcells",
        channel_names=CHANNELS,
        metadata=metadata,
        batch_column=BATCH_COLUMN if batches else None,
    )


def write_montage(path: str, per_class: int = 8, size: int = 32, scale: int = 3) -> None:
    """A montage of ``per_class`` cells of every phenotype (one row each), as the map tools show them."""
    from PIL import Image

    from medviz.data.prepare.channels import configure_channels

    data = configure_channels(load_synthcells(n_images=per_class * len(CLASSES) * 2, size=size))
    shown = data.display_images()
    rows = [
        np.concatenate(list(shown[np.flatnonzero(data.labels == c)[:per_class]]), axis=1) for c in range(len(CLASSES))
    ]
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    grid.resize((grid.width * scale, grid.height * scale), Image.Resampling.NEAREST).save(path)


if __name__ == "__main__":  # python -m medviz.data.synthetic.synthcells docs/images/synthcells.png
    import sys

    write_montage(sys.argv[1] if len(sys.argv) > 1 else "synthcells.png")
