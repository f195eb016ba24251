"""aug=fluorescence done the per-image way: torchvision tensor transforms on one (C, H, W) image at a time.

The comparison for our batched pass on 16-bit multi-channel images: the same steps (random
rotation with border fill, resized crop, flips, 90° rotation, per-channel brightness / contrast /
gamma) with torchvision's tensor transforms, one image per call, in a DataLoader.
"""

from __future__ import annotations

import torch
import torchvision.transforms.v2 as T
from torch.utils.data import DataLoader, Dataset


class ChannelJitter:
    """Per-channel brightness, contrast and gamma of one image (C, H, W) in [0, 1], with probability p."""

    def __init__(self, strengths=(0.2, 0.2, 0.2), p: float = 0.8) -> None:
        self.strengths, self.p = strengths, p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return x
        bri, con, gam = self.strengths
        c = x.shape[0]
        u = torch.rand(c, 3) * 2 - 1
        x = (x * (1 + bri * u[:, 0]).view(c, 1, 1)).clamp(0, 1)
        mean = x.mean(dim=(1, 2), keepdim=True)
        x = ((x - mean) * (1 + con * u[:, 1]).view(c, 1, 1) + mean).clamp(0, 1)
        return x.pow(torch.exp(torch.log1p(torch.tensor(gam)) * u[:, 2]).view(c, 1, 1))


def fluorescence_pipeline(size: int, fill: list[float], low: torch.Tensor, high: torch.Tensor) -> T.Compose:
    """uint16 (C, H, W) -> one augmented float view in [0, 1], torchvision's tensor transforms."""
    return T.Compose(
        [
            T.Lambda(lambda x: ((x.float() - low) / (high - low)).clamp(0, 1)),
            T.RandomRotation(45, fill=fill),
            T.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True),
            T.RandomHorizontalFlip(),
            T.RandomVerticalFlip(),
            T.RandomApply([T.Lambda(lambda x: torch.rot90(x, 1, (1, 2)))], p=0.5),
            ChannelJitter(),
        ]
    )


class PerImage(Dataset):
    """Two augmented views of each image, made one image at a time (the reference code's design)."""

    def __init__(self, images: torch.Tensor, transform) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        return self.transform(image), self.transform(image)


def per_image_loader(images: torch.Tensor, transform, batch_size: int, workers: int) -> DataLoader:
    return DataLoader(PerImage(images, transform), batch_size=batch_size, num_workers=workers, shuffle=True)
