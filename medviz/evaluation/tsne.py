"""t-SNE baselines with openTSNE defaults (paper §4)."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

# Above this pixel dimension (PCam: 96 x 96 x 3 = 27,648), PCA to 100 components comes first.
MAX_PIXEL_DIM = 5000
# PCA is fitted on at most this many images, then applied in chunks: PCam's 327,680 patches as
# float32 would need 36 GB at once. With thousands of images the top 100 components are stable.
PCA_FIT_IMAGES = 10000


def feature_tsne(features: np.ndarray, seed: int = 0, n_jobs: int = -1) -> np.ndarray:
    """t-SNE (openTSNE defaults) of features (N, D) -> (N, 2); e.g. SimCLR/BYOL's 512-D."""
    from openTSNE import TSNE  # imported here: slow to import and only needed here

    return np.asarray(TSNE(random_state=seed, n_jobs=n_jobs).fit(np.asarray(features, dtype=np.float32)))


def pixels_for_tsne(images: np.ndarray, seed: int = 0, chunk: int = 4096) -> np.ndarray:
    """uint8 images (N, H, W, 3) -> pixel vectors in [0, 1], or their first 100 PCs when large."""
    n = len(images)
    dim = int(np.prod(images.shape[1:]))
    if dim <= MAX_PIXEL_DIM:
        return images.reshape(n, dim).astype(np.float32) / 255.0
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, min(n, PCA_FIT_IMAGES), replace=False))
    pca = PCA(n_components=min(100, len(fit_rows)), random_state=seed)
    pca.fit(images[fit_rows].reshape(len(fit_rows), dim).astype(np.float32) / 255.0)
    parts = [
        pca.transform(images[s : s + chunk].reshape(-1, dim).astype(np.float32) / 255.0) for s in range(0, n, chunk)
    ]
    return np.concatenate(parts).astype(np.float32)


def pixel_tsne(images: np.ndarray, seed: int = 0, n_jobs: int = -1) -> np.ndarray:
    """t-SNE of raw pixels: uint8 (N, H, W, 3) -> (N, 2) (PCA to 100 first for large images)."""
    return feature_tsne(pixels_for_tsne(images, seed=seed), seed=seed, n_jobs=n_jobs)
