"""Augmentation throughput: our batched pipeline vs torchvision's per-image PIL pipeline.

Same settings for both (docs/reproducing.md): default, rot90 and randrot at 28 px and 96 px. torchvision
runs the reference code's design -- one PIL image at a time in one process; ours runs one batch
on the CPU (or the GPU when there is one). Then fluorescence: 5-channel 16-bit 64 px images,
aug=fluorescence batched against the same steps with torchvision's tensor transforms per image
in a DataLoader (two views per image, as training makes).

    python -m benchmarks.augment_throughput [--images 2048] [--batch 1024] [--workers 2]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from benchmarks.common import header, seconds
from benchmarks.fluorescence_reference import fluorescence_pipeline, per_image_loader
from benchmarks.reference_pipeline import FILL, MEAN, SETS, STD, torchvision_pipeline
from medviz.augment import BatchAugment
from medviz.data.intensity import Intensity
from medviz.models.preprocess import Preprocess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048, help="images per timing")
    parser.add_argument("--batch", type=int, default=1024, help="our batch size")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the per-image fluorescence case")
    args = parser.parse_args()
    header("augmentation throughput (images/s), ours batched vs torchvision per image")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rng = np.random.default_rng(0)
    print(f"{'set':8} {'size':>4} {'torchvision':>12} {'ours':>12} {'ratio':>7}")
    for size in (28, 96):
        arrays = rng.integers(0, 256, (args.images, size, size, 3), dtype=np.uint8)
        pil = [Image.fromarray(a) for a in arrays[: min(args.images, 1024)]]
        batch = torch.from_numpy(arrays.transpose(0, 3, 1, 2).copy()).to(device)
        for name, options in SETS.items():
            reference = torchvision_pipeline(name, size)
            ref_rate = len(pil) / seconds(lambda ref=reference, pil=pil: [ref(p) for p in pil], repeats=1)
            ours = BatchAugment(FILL, **options).to(device)
            # torchvision's pipeline ends in Normalize; ours normalises in the model's preprocessing.
            normalise = Preprocess(MEAN, STD).to(device).normalise
            ours_time = seconds(lambda o=ours, n=normalise, batch=batch: [n(o(b)) for b in batch.split(args.batch)])
            ours_rate = len(batch) / ours_time
            print(f"{name:8} {size:>4} {ref_rate:>12,.0f} {ours_rate:>12,.0f} {ours_rate / ref_rate:>6.1f}x")
    fluorescence(args, device)


def fluorescence(args: argparse.Namespace, device: torch.device, size: int = 64, channels: int = 5) -> None:
    """5-channel 16-bit: two views per image, ours batched vs torchvision tensor transforms per image.

    Both sides take the same batch size (for the per-image side it only sets the collation);
    one row per batch size, since large CPU batches pay for fresh memory in every op.
    """
    header(f"fluorescence {channels} channels, uint16, {size} px: two views/image, images/s")
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(100, 4000, (args.images, channels, size, size)).astype(np.uint16))
    fill = [0.05] * channels
    low, high = torch.full((channels, 1, 1), 100.0), torch.full((channels, 1, 1), 4000.0)
    ours = BatchAugment(
        fill,
        rotate_degrees=45.0,
        dihedral=True,
        jitter_p=0.0,
        gray_p=0.0,
        channel_jitter=(0.2, 0.2, 0.2),
        channel_jitter_p=0.8,
    ).to(device)
    stored = images.to(device)
    # The model's own preprocessing maps the stored counts to [0, 1], as in training.
    scale = Intensity("fixed", (100.0,) * channels, (4000.0,) * channels)
    to_unit = Preprocess([0.5] * channels, [0.25] * channels, scale).to(device).to_unit
    print(f"{'set':12} {'batch':>6} {'per image':>12} {'ours':>12} {'ratio':>7}")
    for batch_size in sorted({min(128, args.batch), args.batch}):
        loader = per_image_loader(images, fluorescence_pipeline(size, fill, low, high), batch_size, args.workers)
        ref_rate = len(images) / seconds(lambda loader=loader: [batch for batch in loader], repeats=1)
        batches = stored.split(batch_size)
        ours_rate = len(images) / seconds(lambda batches=batches: [two_views(ours, to_unit(b)) for b in batches])
        ratio = ours_rate / ref_rate
        print(f"{'fluorescence':12} {batch_size:>6} {ref_rate:>12,.0f} {ours_rate:>12,.0f} {ratio:>6.1f}x")


def two_views(augment: BatchAugment, unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """As training does: the stored batch mapped to [0, 1] once, then two random views of it."""
    return augment(unit), augment(unit)


if __name__ == "__main__":
    main()
