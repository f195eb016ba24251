"""Known problems planted in a dataset, to see where they land in the map (paper Fig. 6).

* duplicates: ``count`` perturbed copies (random crop, noise, brightness/contrast) of one image,
  appended with that image's label -- as when the same field of view was saved many times;
* artefacts: a black blob painted over ``count`` existing images -- as dust, ink or a scanner
  fault would leave.

Each returns the changed dataset and a boolean mask (N,) of the planted images, which the run
saves as ``qc_injected.npy`` so ``medviz qc`` can report how many it flags.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image, ImageDraw

from medviz.data.image_arrays import ImageArrays
from medviz.errors import ConfigError


def _perturbed_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = image.shape[0]
    side = int(round(size * rng.uniform(0.8, 1.0)))
    x, y = rng.integers(0, size - side + 1, size=2)
    crop = Image.fromarray(image[y : y + side, x : x + side]).resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(crop, dtype=np.float64)
    pixels = (pixels - pixels.mean()) * rng.uniform(0.85, 1.15) + pixels.mean() * rng.uniform(0.85, 1.15)
    pixels += rng.normal(0, 6, pixels.shape)
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def inject_duplicates(data: ImageArrays, count: int, seed: int) -> tuple[ImageArrays, np.ndarray]:
    """Append ``count`` perturbed copies of one randomly chosen image."""
    rng = np.random.default_rng(seed)
    source = int(rng.integers(len(data)))
    copies = np.stack([_perturbed_copy(data.images[source], rng) for _ in range(count)])
    injected = np.concatenate([np.zeros(len(data), bool), np.ones(count, bool)])
    grown = replace(
        data,
        images=np.concatenate([data.images, copies]),
        labels=np.concatenate([data.labels, np.full(count, data.labels[source])]),
        split=None if data.split is None else np.concatenate([data.split, np.full(count, data.split[source])]),
        files=None if data.files is None else [*data.files, *[data.files[source]] * count],
        # a planted copy carries its source's metadata (same plate, same treatment)
        metadata=None
        if data.metadata is None
        else data.metadata.iloc[np.r_[np.arange(len(data)), np.full(count, source)]].reset_index(drop=True),
        border_rgb=None,
    )
    return grown, injected


def inject_artefacts(data: ImageArrays, count: int, seed: int) -> tuple[ImageArrays, np.ndarray]:
    """Paint a black blob (an ellipse over 15-30 % of the image) on ``count`` random images."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(data), size=min(count, len(data)), replace=False)
    images = data.images.copy()
    size = images.shape[1]
    for index in chosen:
        canvas = Image.fromarray(images[index])
        w, h = (rng.uniform(0.4, 0.6, size=2) * size).astype(int)
        x, y = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
        ImageDraw.Draw(canvas).ellipse((x, y, x + w, y + h), fill=(0, 0, 0))
        images[index] = np.asarray(canvas)
    injected = np.zeros(len(data), bool)
    injected[chosen] = True
    changed = replace(data, images=images)
    return changed, injected


# QC on the map needs more points than HDBSCAN's smallest cluster (15, medviz.maps.qc).
MIN_QC_IMAGES = 16

INJECTORS = {"duplicates": inject_duplicates, "artefacts": inject_artefacts}


def inject(data: ImageArrays, kind: str, count: int, seed: int) -> tuple[ImageArrays, np.ndarray]:
    """Plant ``count`` problems of ``kind`` (``duplicates`` or ``artefacts``) in an in-memory dataset."""
    if kind not in INJECTORS:
        raise ConfigError(f"qc.inject={kind} is not known; choose one of: {', '.join(INJECTORS)} (or null)")
    if isinstance(data.images, np.memmap):
        raise ConfigError(
            f"qc.inject needs a dataset in memory; '{data.name}' is memory-mapped from disk: plant the problems "
            "in a subset that fits in memory with dataset.n_images=<N> (e.g. 20000)"
        )
    if data.images.dtype != np.uint8 or data.channels != 3:
        raise ConfigError(
            f"qc.inject plants its problems in 8-bit RGB images; '{data.name}' has {data.channels} channel(s) of "
            f"{data.images.dtype}. Run medviz qc on the trained map instead (it works on any images)"
        )
    if len(data) < MIN_QC_IMAGES:
        raise ConfigError(
            f"qc.inject needs a dataset of at least {MIN_QC_IMAGES} images; '{data.name}' has {len(data)}"
        )
    if not 1 <= count <= len(data):
        raise ConfigError(f"qc.count must be between 1 and the dataset's {len(data)} images, got {count}")
    return INJECTORS[kind](data, count, seed)
