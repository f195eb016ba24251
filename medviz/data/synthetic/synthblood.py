"""synthblood: a procedurally rendered, offline stand-in for BloodMNIST.

Each image is a blood-smear patch: a pink background with red-blood-cell rings, and one white
cell (or platelet cluster) at a uniformly random orientation in the centre. The 8 classes carry
BloodMNIST's names and differ in cell size, elongation, cytoplasm colour and nucleus shape, so a
model has to look at shape and colour, not position. Per-image stain, brightness and noise jitter
keep raw pixels from separating the classes on their own (kNN on pixels stays well under 1).

Everything is vectorised over images with NumPy: 10,000 images at 28x28 render in a few seconds,
and the same seed always gives the same array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviz.data.image_arrays import ImageArrays
from medviz.data.synthetic.batches import BATCH_COLUMN, plant_batches
from medviz.errors import ConfigError

#: BloodMNIST's class names, in its label order.
CLASS_NAMES: tuple[str, ...] = (
    "basophil",
    "eosinophil",
    "erythroblast",
    "immature granulocytes",
    "lymphocyte",
    "monocyte",
    "neutrophil",
    "platelet",
)

_BACKGROUND = np.array([0.93, 0.82, 0.86])
_RBC = np.array([0.86, 0.55, 0.60])
_NUCLEUS = np.array([0.30, 0.20, 0.50])
_SUPERSAMPLE = 2  # render at 2x and box-filter down: smooth edges without a blur pass


@dataclass(frozen=True)
class _Blob:
    """An ellipse in cell-local coordinates (u along the cell's long axis), alpha-composited."""

    centre: tuple[float, float]
    radii: tuple[float, float]
    colour: np.ndarray
    opacity: float = 1.0
    texture: float = 0.0  # strength of the granular texture multiplied into the colour


def _cell_recipe(label: int, rng: np.random.Generator) -> list[_Blob]:
    """Blobs of one cell of class ``label``, drawn back to front, with small per-cell variation."""
    j = lambda s=0.04: float(rng.normal(0.0, s))  # noqa: E731  (tiny local jitter helper)
    purple = _NUCLEUS
    if label == 0:  # basophil: dark granular nucleus filling most of a lilac cell
        return [
            _Blob((0, 0), (0.46 + j(), 0.34 + j()), np.array([0.72, 0.62, 0.82]), 0.9, 0.2),
            _Blob((j(), j()), (0.38 + j(), 0.26 + j()), purple * 0.9, 0.95, 0.45),
        ]
    if label == 1:  # eosinophil: orange cytoplasm, two nucleus lobes along the long axis
        return [
            _Blob((0, 0), (0.44 + j(), 0.31 + j()), np.array([0.85, 0.45, 0.25]), 0.95, 0.25),
            _Blob((-0.14 + j(0.02), j(0.02)), (0.11, 0.08), purple, 0.95),
            _Blob((0.14 + j(0.02), j(0.02)), (0.11, 0.08), purple, 0.95),
        ]
    if label == 2:  # erythroblast: small cell, round dark nucleus, pale blue rim
        return [
            _Blob((0, 0), (0.25 + j(0.02), 0.19 + j(0.02)), np.array([0.62, 0.70, 0.88]), 0.9),
            _Blob((j(0.02), 0), (0.17 + j(0.02), 0.14 + j(0.02)), purple * 0.8, 1.0),
        ]
    if label == 3:  # immature granulocyte: granular cytoplasm, bean-shaped nucleus (an arc)
        blobs = [_Blob((0, 0), (0.46 + j(), 0.34 + j()), np.array([0.80, 0.70, 0.86]), 0.8, 0.35)]
        for t in np.linspace(-0.9, 0.9, 5):
            blobs.append(_Blob((0.22 * np.sin(t), -0.12 + 0.14 * np.cos(t)), (0.1, 0.08), purple))
        return blobs
    if label == 4:  # lymphocyte: large round nucleus, thin blue cytoplasm
        return [
            _Blob((0, 0), (0.31 + j(0.02), 0.26 + j(0.02)), np.array([0.60, 0.65, 0.90]), 0.9),
            _Blob((0.02, 0), (0.27 + j(0.02), 0.22 + j(0.02)), purple * 0.85, 1.0),
        ]
    if label == 5:  # monocyte: big grey-blue cell, curved nucleus near one side
        blobs = [_Blob((0, 0), (0.5 + j(), 0.36 + j()), np.array([0.62, 0.62, 0.85]), 0.85, 0.1)]
        for t in np.linspace(-1.1, 1.1, 6):
            blobs.append(_Blob((0.24 * np.sin(t), 0.16 - 0.18 * np.cos(t)), (0.09, 0.07), purple))
        return blobs
    if label == 6:  # neutrophil: pale cell, 3-5 small separate nucleus lobes on a ring
        blobs = [_Blob((0, 0), (0.42 + j(), 0.34 + j()), np.array([0.88, 0.78, 0.86]), 0.8, 0.2)]
        n_lobes = int(rng.integers(3, 6))
        for t in np.linspace(0, 2 * np.pi, n_lobes, endpoint=False) + rng.uniform(0, 1):
            blobs.append(_Blob((0.17 * np.cos(t), 0.12 * np.sin(t)), (0.075, 0.065), purple))
        return blobs
    # platelet: 2-4 tiny fragments strung along a line, no cell body
    n_bits = int(rng.integers(2, 5))
    return [
        _Blob((0.16 * (t - (n_bits - 1) / 2) + j(0.02), j(0.03)), (0.07, 0.05), purple * 1.2, 0.9)
        for t in range(n_bits)
    ]


def _composite(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """In place: canvas (H, W, 3) <- alpha-blend ``colour`` (H, W, 3 or 3,) with alpha (H, W)."""
    a = alpha[..., None]
    canvas *= 1.0 - a
    canvas += a * colour


def _soft_ellipse(u: np.ndarray, v: np.ndarray, blob: _Blob, sharpness: float) -> np.ndarray:
    d = np.sqrt(((u - blob.centre[0]) / blob.radii[0]) ** 2 + ((v - blob.centre[1]) / blob.radii[1]) ** 2)
    return blob.opacity / (1.0 + np.exp(-(1.0 - d) * sharpness))


def _render_one(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One image as float (size, size, 3) in [0, 1]."""
    s = size * _SUPERSAMPLE
    axis = (np.arange(s) + 0.5) / s * 2.0 - 1.0
    y, x = np.meshgrid(axis, axis, indexing="ij")
    canvas = np.broadcast_to(_BACKGROUND + rng.normal(0, 0.03, 3), (s, s, 3)).copy()

    # Red blood cells: pale rings scattered around, drawn first so the white cell sits on top.
    for _ in range(int(rng.integers(3, 7))):
        cx, cy = rng.uniform(-1.1, 1.1, 2)
        r = rng.uniform(0.22, 0.32)
        ecc = rng.uniform(0.8, 1.0)
        ang = rng.uniform(0, np.pi)
        du = (x - cx) * np.cos(ang) + (y - cy) * np.sin(ang)
        dv = (-(x - cx) * np.sin(ang) + (y - cy) * np.cos(ang)) / ecc
        d = np.sqrt(du**2 + dv**2) / r
        ring = np.exp(-((d - 0.85) ** 2) / 0.03) * 0.55 + (d < 0.85) * 0.12
        _composite(canvas, np.clip(ring, 0, 1), _RBC)

    # The white cell: uniformly random orientation, small offset and size jitter.
    theta = rng.uniform(0, 2 * np.pi)
    scale = rng.uniform(1.15, 1.9)  # cells fill about half the patch, as in BloodMNIST
    ox, oy = rng.normal(0, 0.08, 2)
    u = ((x - ox) * np.cos(theta) + (y - oy) * np.sin(theta)) / scale
    v = (-(x - ox) * np.sin(theta) + (y - oy) * np.cos(theta)) / scale
    texture = rng.normal(0, 1, (s // 4 + 1, s // 4 + 1))
    texture = np.kron(texture, np.ones((4, 4)))[:s, :s]
    for blob in _cell_recipe(label, rng):
        colour = blob.colour * (1 + blob.texture * 0.25 * texture)[..., None]
        _composite(canvas, _soft_ellipse(u, v, blob, sharpness=14.0), np.clip(colour, 0, 1))

    # Stain and brightness jitter per image, then sensor noise.
    stain = 1.0 + rng.normal(0, 0.12, 3)
    brightness = rng.uniform(0.82, 1.12)
    canvas = 1.0 - (1.0 - canvas) * stain * rng.uniform(0.75, 1.25)  # stain intensity
    mixing = np.eye(3) + rng.normal(0, 0.05, (3, 3))  # stain hue drifts between slides
    canvas = (canvas @ mixing.T) * brightness + rng.normal(0, 0.03, canvas.shape)
    small = canvas.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.clip(small, 0.0, 1.0)


def make_synthblood(
    n_images: int = 4000,
    seed: int = 0,
    size: int = 28,
    class_weights: tuple[float, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render the synthblood dataset.

    Args:
        n_images: number of images N.
        seed: the same seed always gives the same images and labels.
        size: image side S in pixels (28 like MedMNIST; larger sizes work too).
        class_weights: relative class frequencies (8 values); balanced when None.

    Returns:
        images: uint8 (N, S, S, 3), MedMNIST's in-memory layout.
        labels: int64 (N,), values 0..7 indexing :data:`CLASS_NAMES`.
    """
    if n_images < 1:
        raise ValueError(f"synthblood needs n_images >= 1, got {n_images}")
    rng = np.random.default_rng(seed)
    weights = np.ones(len(CLASS_NAMES)) if class_weights is None else np.asarray(class_weights, float)
    if weights.shape != (len(CLASS_NAMES),) or (weights < 0).any() or weights.sum() == 0:
        raise ValueError(f"class_weights must be {len(CLASS_NAMES)} non-negative numbers, got {class_weights}")
    labels = rng.choice(len(CLASS_NAMES), size=n_images, p=weights / weights.sum()).astype(np.int64)
    images = np.empty((n_images, size, size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i] = np.round(_render_one(int(label), size, rng) * 255).astype(np.uint8)
    return images, labels


def load_synthblood(
    n_images: int = 4000, seed: int = 0, size: int = 28, batches: int = 0, batch_strength: float = 0.5
) -> ImageArrays:
    """The built-in dataset as :class:`ImageArrays` (the target of ``dataset=synthblood``); with
    ``batches`` > 0, split into that many technical batches with planted stain and focus effects
    (:mod:`medviz.data.synthetic.batches`; metadata column ``batch``)."""
    if n_images < 1 or size < 8:
        raise ConfigError(
            f"synthblood needs dataset.source.n_images >= 1 and dataset.source.size >= 8 "
            f"(got n_images={n_images}, size={size}); the default is 10000 images of 28x28."
        )
    images, labels = make_synthblood(n_images=n_images, seed=seed, size=size)
    if not batches:
        return ImageArrays(images=images, labels=labels, class_names=CLASS_NAMES, name="synthblood")
    cell_types = ("cell_type", np.asarray(CLASS_NAMES)[labels])
    images, metadata = plant_batches(images, batches, batch_strength, seed, stain=True, classes=cell_types)
    return ImageArrays(
        images=images,
        labels=labels,
        class_names=CLASS_NAMES,
        name="synthblood",
        metadata=metadata,
        batch_column=BATCH_COLUMN,
    )
