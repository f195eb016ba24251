"""The reference code's augmentations: torchvision transforms on one PIL image at a time.

Used by the benchmarks as the design we compare against, with the same settings as ours.
"""

from __future__ import annotations

import torchvision.transforms as T
from PIL import Image

FILL = (0.8, 0.7, 0.75)
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
SETS = {"default": {}, "rot90": {"dihedral": True}, "randrot": {"dihedral": True, "rotate_degrees": 45.0}}


class Rot90:
    """Rotate a PIL image by 90 degrees (the reference's RandomApply([Rot90], p=0.5))."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.transpose(Image.Transpose.ROTATE_90)


def torchvision_pipeline(name: str, size: int) -> T.Compose:
    steps: list = []
    if name == "randrot":
        steps.append(T.RandomRotation(45, fill=tuple(int(255 * c) for c in FILL)))
    steps += [T.RandomResizedCrop(size, scale=(0.2, 1.0)), T.RandomHorizontalFlip()]
    if name in ("rot90", "randrot"):
        steps += [T.RandomVerticalFlip(), T.RandomApply([Rot90()], p=0.5)]
    steps += [
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(0.2),
        T.ToTensor(),
        T.Normalize(MEAN, STD),
    ]
    return T.Compose(steps)
