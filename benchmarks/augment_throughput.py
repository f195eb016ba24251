"""Augmentation throughput: our batched pipeline vs torchvision's per-image PIL pipeline.

Same settings for both (docs/reproducing.md): default, rot90 and randrot at 28 px and 96 px. torchvision
runs the reference code's design -- one PIL image at a time in one process; ours runs one batch
on the CPU (or the GPU when there is one).

    python -m benchmarks.augment_throughput [--images 2048] [--batch 1024]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from benchmarks.common import header, seconds
from benchmarks.reference_pipeline import FILL, MEAN, SETS, STD, torchvision_pipeline
from medviz.augment import BatchAugment
from medviz.models.preprocess import Preprocess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048, help="images per timing")
    parser.add_argument("--batch", type=int, default=1024, help="our batch size")
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


if __name__ == "__main__":
    main()
