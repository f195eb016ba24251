"""t-SNE baselines with openTSNE defaults (paper §4)."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from medviz.data.intensity import Intensity

# Above this pixel dimension (PCam: 96 x 96 x 3 = 27,648), PCA to 100 components comes first.
MAX_PIXEL_DIM = 5000
# PCA is fitted on at most this many images, then applied in chunks: PCam's 327,680 patches as
# float32 would need 36 GB at once. With thousands of images the top 100 components are stable.
PCA_FIT_IMAGES = 10000


def feature_tsne(features: np.ndarray, seed: int = 0, n_jobs: int = -1) -> np.ndarray:
    """t-SNE (openTSNE defaults) of features (N, D) -> (N, 2); e.g. SimCLR/BYOL's 512-D."""
    from openTSNE import TSNE  # imported here: slow to import and only needed here

    return np.asarray(TSNE(random_state=seed, n_jobs=n_jobs).fit(np.asarray(features, dtype=np.float32)))


def _unit_rows(images: np.ndarray, intensity: Intensity | None) -> np.ndarray:
    """Images (n, H, W, C) -> pixel vectors float32 (n, H*W*C) in [0, 1]."""
    n = len(images)
    if intensity is None or intensity.is_byte_range():
        return np.asarray(images).reshape(n, -1).astype(np.float32) / 255.0
    return intensity.to_unit(np.asarray(images)).reshape(n, -1)


def pixels_for_tsne(
    images: np.ndarray, seed: int = 0, chunk: int = 4096, intensity: Intensity | None = None
) -> np.ndarray:
    """Images (N, H, W, C) -> pixel vectors in [0, 1], or their first 100 PCs when large.

    ``intensity``: the dataset's mapping to [0, 1] (None: 8-bit, 0-255), the one the network sees.
    """
    n = len(images)
    dim = int(np.prod(images.shape[1:]))
    if dim <= MAX_PIXEL_DIM:
        return _unit_rows(images, intensity)
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, min(n, PCA_FIT_IMAGES), replace=False))
    pca = PCA(n_components=min(100, len(fit_rows)), random_state=seed)
    pca.fit(_unit_rows(images[fit_rows], intensity))
    parts = [pca.transform(_unit_rows(images[s : s + chunk], intensity)) for s in range(0, n, chunk)]
    return np.concatenate(parts).astype(np.float32)


def pixel_tsne(images: np.ndarray, seed: int = 0, n_jobs: int = -1, intensity: Intensity | None = None) -> np.ndarray:
    """t-SNE of raw pixels: images (N, H, W, C) -> (N, 2) (PCA to 100 first for large images)."""
    return feature_tsne(pixels_for_tsne(images, seed=seed, intensity=intensity), seed=seed, n_jobs=n_jobs)
