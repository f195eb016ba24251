"""digits: scikit-learn's bundled handwritten digits, a small real dataset that needs no download.

1,797 scans of handwritten digits (UCI's optical recognition set), 8x8 pixels with 17 grey levels
(0-16), 10 classes. It is the offline control for the paper's CIFAR-10 experiment: real images
in which orientation carries class information (a 6 turned upside down is a 9), so rotation
augmentations are expected to hurt here, where on microscopy they help.

The grey levels are scaled once to 8 bits (v * 255 / 16, rounded; said in the log) and the images
resized to ``size`` with the same bilinear filter as any image file; they are stored as RGB (the
grey value in all three channels), as a folder of grayscale PNGs would be read.
"""

from __future__ import annotations

import logging

import numpy as np

from medviz.data.image_arrays import ImageArrays
from medviz.data.readers.images import resize
from medviz.errors import ConfigError

log = logging.getLogger("medviz")

#: The scans' grey levels run from 0 to this.
GREY_LEVELS_TOP = 16


def load_digits(size: int = 28) -> ImageArrays:
    """The digits as :class:`ImageArrays`: (1797, size, size, 3) uint8, labels 0-9 (the target of
    ``dataset=digits``)."""
    from sklearn.datasets import load_digits as sklearn_digits

    if size < 8:
        raise ConfigError(f"digits needs dataset.size >= 8 (the scans are 8x8), got {size}")
    bunch = sklearn_digits()
    grey = bunch.images  # (1797, 8, 8) float64 holding the integers 0..16
    top = int(grey.max())
    if top > GREY_LEVELS_TOP or grey.min() < 0:
        raise ConfigError(f"scikit-learn's digits hold values {grey.min()}..{top}, not 0..16 as expected")
    eight_bit = np.round(grey * (255 / GREY_LEVELS_TOP)).astype(np.uint8)
    log.info(f"digits: {len(grey)} scans of 8x8, grey levels 0-16 scaled to 0-255 and resized to {size}x{size}")
    rgb = np.repeat(eight_bit[..., None], 3, axis=3)
    images = np.stack([resize(image, size) for image in rgb])
    labels = bunch.target.astype(np.int64)
    return ImageArrays(images=images, labels=labels, class_names=tuple(map(str, range(10))), name="digits")
