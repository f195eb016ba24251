"""t-SNE baselines with openTSNE defaults (paper §4)."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA


def feature_tsne(features: np.ndarray, seed: int = 0, n_jobs: int = -1) -> np.ndarray:
    """t-SNE (openTSNE defaults) of features (N, D) -> (N, 2); e.g. SimCLR/BYOL's 512-D."""
    from openTSNE import TSNE

    return np.asarray(TSNE(random_state=seed, n_jobs=n_jobs).fit(np.asarray(features, dtype=np.float32)))


def pixel_tsne(images: np.ndarray, seed: int = 0, n_jobs: int = -1, max_pixels_dim: int = 5000) -> np.ndarray:
    """t-SNE of raw pixels: uint8 (N, H, W, 3) -> (N, 2).

    Pixels are scaled to [0, 1]. When the pixel dimension exceeds ``max_pixels_dim`` (e.g. PCam's
    96x96x3), PCA to 100 components comes first, as in the paper.
    """
    from openTSNE import TSNE  # imported here: openTSNE is slow to import and only needed here

    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    if x.shape[1] > max_pixels_dim:
        x = PCA(n_components=100, random_state=seed).fit_transform(x).astype(np.float32)
    return np.asarray(TSNE(random_state=seed, n_jobs=n_jobs).fit(x))
