"""ImageNet ResNet features for the paper's t-SNE baselines (paper §4, Baselines).

Images are resized to 256 x 256, centre-cropped to 224 x 224 and normalised with ImageNet's
statistics (He et al. 2016), then passed through ResNet18 (512-D) or ResNet152 (2048-D) without
the classification layer. Weights come from torchvision (downloaded once into the torch hub
cache) or, offline, from a local file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import models

from medviz.errors import ConfigError, DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ARCHS = {"resnet18": models.ResNet18_Weights, "resnet152": models.ResNet152_Weights}


def build_resnet(arch: str, weights: str = "imagenet") -> torch.nn.Module:
    """ResNet without its fc layer.

    Args:
        arch: ``resnet18`` or ``resnet152``.
        weights: ``imagenet`` (torchvision's IMAGENET1K_V1, fetched into the torch hub cache if
            missing), a path to a saved state dict, or ``random`` (untrained; for tests only).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown ImageNet backbone '{arch}'; choose one of {sorted(ARCHS)}")
    net = getattr(models, arch)(weights=None)
    if weights == "imagenet":
        spec = ARCHS[arch].IMAGENET1K_V1
        try:
            net.load_state_dict(spec.get_state_dict(progress=False))
        except Exception as err:  # noqa: BLE001 -- any failure to fetch means the same fix
            raise DataError(
                f"could not get ImageNet weights for {arch} ({err.__class__.__name__}). Offline, download "
                f"{spec.url} elsewhere and pass its path, e.g. resnet_weights.{arch}=/path/{Path(spec.url).name}"
            ) from None
    elif weights != "random":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise DataError(f"ImageNet weights file {path} not found")
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.fc = torch.nn.Identity()
    return net.eval()


def preprocess_imagenet(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float (B, 3, 224, 224): resize 256, centre-crop 224, normalise."""
    x = F.interpolate(images.float() / 255.0, size=(256, 256), mode="bilinear", antialias=True, align_corners=False)
    x = x[:, :, 16:240, 16:240]
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def imagenet_features(
    images: np.ndarray,
    arch: str = "resnet18",
    weights: str = "imagenet",
    batch_size: int = 128,
    device: str | None = None,
) -> np.ndarray:
    """Features (N, 512 or 2048) of uint8 images (N, H, W, 3), read in batches (memmaps stay on disk)."""
    if images.dtype != np.uint8 or images.shape[-1] != 3:
        raise ConfigError(
            f"the ImageNet baselines read 8-bit RGB images; these have {images.shape[-1]} channel(s) of "
            f"{images.dtype}: use baselines=[pixels] for this dataset"
        )
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    net = build_resnet(arch, weights).to(dev)
    chunks = []
    for start in range(0, len(images), batch_size):
        block = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size].transpose(0, 3, 1, 2)))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            chunks.append(net(preprocess_imagenet(block.to(dev))).float().cpu())
    return torch.cat(chunks).numpy()
