"""The model's own preprocessing: stored images to the normalised floats its network reads.

It belongs to the model, not to the augmentation: every caller that embeds images (prediction
after training, map snapshots, ``medviz embed``) hands the model images as they are stored
(uint8, uint16 or float, any channel count), and the intensity mapping and normalisation
statistics travel in the model's checkpoints as buffers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch
from torch import nn

from medviz.data.intensity import Intensity, byte_range


class Preprocess(nn.Module):
    """Stored images (B, C, H, W) -> float (B, C, H, W): intensities mapped to [0, 1], then normalised.

    Args:
        mean, std: per-channel statistics of the intensities in [0, 1] (from the training data).
        intensity: how stored values map to [0, 1] (``dataset.normalise``); None: 0-255.

    With ``dataset.normalise=batch`` each technical batch has its own range (``batch_low``/``batch_high``,
    (K, C), one row per name in ``batch_names``, which the checkpoint keeps too); callers pass each
    image's row (``rows``), and images without one get the whole dataset's range.
    """

    batch_low: torch.Tensor  # buffers (K, C): per-batch ranges, registered in __init__
    batch_high: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float], intensity: Intensity | None = None) -> None:
        super().__init__()
        channels = len(mean)
        intensity = intensity or byte_range(channels)
        if not intensity.per_image and len(intensity.low) != channels:
            raise ValueError(f"intensity range for {len(intensity.low)} channels, statistics for {channels}")
        low = intensity.low if not intensity.per_image else (0.0,) * channels
        high = intensity.high if not intensity.per_image else (1.0,) * channels
        shape = (1, channels, 1, 1)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(shape))
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32).view(shape))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32).view(shape))
        self.register_buffer("per_image", torch.tensor(intensity.per_image))
        batches = len(intensity.batch_names)
        for name, values in (("batch_low", intensity.batch_low), ("batch_high", intensity.batch_high)):
            self.register_buffer(name, torch.as_tensor(values, dtype=torch.float32).view(batches, channels))
        self.batch_names: list[str] = list(intensity.batch_names)
        # The names travel in the checkpoint as UTF-8 JSON bytes: a tensor, like every other entry.
        self.register_buffer("batch_names_json", _encoded(self.batch_names))
        # A Python copy: reading the buffer in every step would make the host wait for a GPU.
        self.scales_per_image = intensity.per_image
        self.register_load_state_dict_post_hook(lambda module, _: module._after_load())

    def _after_load(self) -> None:
        self.scales_per_image = bool(self.per_image)
        self.batch_names = _decoded(self.batch_names_json)

    @property
    def channels(self) -> int:
        return int(self.mean.shape[1])

    @property
    def per_batch(self) -> bool:
        """Whether technical batches have ranges of their own (``dataset.normalise=batch``)."""
        return bool(self.batch_names)

    def batch_rows(self, names) -> torch.Tensor:
        """Rows of ``batch_low``/``batch_high`` for technical batch names (N,) -> int64 (N,); an unknown
        name is refused (new batches: :meth:`add_batches` first)."""
        where = {name: row for row, name in enumerate(self.batch_names)}
        unknown = sorted({str(n) for n in names} - set(where))
        if unknown:
            raise KeyError(f"technical batches unknown to this network's preprocessing: {', '.join(unknown[:5])}")
        return torch.tensor([where[str(n)] for n in names], dtype=torch.long)

    def add_batches(self, names: list[str], low: torch.Tensor, high: torch.Tensor) -> None:
        """Ranges (K, C) for technical batches never seen in training (``medviz embed`` of a new plate)."""
        self.batch_low = torch.cat([self.batch_low, low.to(self.batch_low)])
        self.batch_high = torch.cat([self.batch_high, high.to(self.batch_high)])
        self.batch_names = [*self.batch_names, *[str(n) for n in names]]
        self.batch_names_json = _encoded(self.batch_names).to(self.batch_low.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # The per-batch tables take the checkpoint's shape: a model built without the run's data (medviz
        # embed) learns its technical batches from the checkpoint.
        for name in ("batch_low", "batch_high", "batch_names_json"):
            saved = state_dict.get(prefix + name)
            if saved is not None and saved.shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(saved))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, images: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Stored images (B, C, H, W) -> normalised float (B, C, H, W); no randomness. ``rows``: each
        image's technical batch row (per-batch ranges), (B,)."""
        return self.normalise(self.to_unit(images, rows))

    def to_unit(self, images: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Stored images (B, C, H, W) -> intensities float (B, C, H, W) in [0, 1].

        For 8-bit images with the 0-255 range this is exactly ``images / 255``. ``rows`` (B,): each
        image's row of the per-batch ranges (``dataset.normalise=batch``); else the dataset's range.
        """
        x = images.to(torch.float32, copy=True)  # a copy even for float input: changed in place below
        if self.scales_per_image:
            low = x.amin(dim=(2, 3), keepdim=True)
            span = x.amax(dim=(2, 3), keepdim=True) - low
        elif rows is not None and self.per_batch:
            b, c = x.shape[:2]
            low = self.batch_low[rows].view(b, c, 1, 1)
            span = self.batch_high[rows].view(b, c, 1, 1) - low
        else:
            low, span = self.low, self.high - self.low
        # In place on the new float copy: one allocation for a batch (the same values as out of place).
        return x.sub_(low).div_(torch.where(span > 0, span, torch.ones_like(span))).clamp_(0, 1)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Float (B, C, H, W) in [0, 1] (e.g. an augmented view) -> normalised float (B, C, H, W)."""
        return (x - self.mean) / self.std


def _encoded(names: list[str]) -> torch.Tensor:
    """Technical batch names -> uint8 (L,): their JSON list in UTF-8."""
    return torch.tensor(list(json.dumps(list(names)).encode("utf-8")), dtype=torch.uint8)


def _decoded(encoded: torch.Tensor) -> list[str]:
    """The inverse of :func:`_encoded`; an empty tensor (a checkpoint from before the names) is no names."""
    if not encoded.numel():
        return []
    return [str(n) for n in json.loads(bytes(encoded.cpu().tolist()).decode("utf-8"))]
