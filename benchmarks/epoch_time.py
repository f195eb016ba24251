"""Epoch time of t-SimCNE: our design vs the same model fed by a per-image PIL DataLoader.

Ours: the real training path -- uint8 batches, both views augmented in one batched pass on the
model's device (on a GPU: data resident there). Reference design (the original t-SimCNE code):
a Dataset that makes two views per image with torchvision's PIL transforms, in ``--workers``
loader processes. Same model, same optimiser, same Lightning Trainer, same images; stage 1;
the time of the second epoch (the first warms up workers and caches).

    python -m benchmarks.epoch_time [--backbone tinycnn] [--images 4096] [--batch 256] [--workers 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import header
from benchmarks.reference_pipeline import torchvision_pipeline
from medviz.data.datamodule import ArrayDataModule
from medviz.data.synthetic.synthblood import load_synthblood
from medviz.runs.rebuild import build_method

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


class TwoPILViews(Dataset):
    """The reference design: each item is two independently augmented views of one PIL image."""

    def __init__(self, images: np.ndarray, transform) -> None:
        self.images = [Image.fromarray(image) for image in images]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        return self.transform(image), self.transform(image), index


class EpochTimer(L.Callback):
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - self._start)


def second_epoch_seconds(module: L.LightningModule, train_data) -> float:
    timer = EpochTimer()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="auto",
        devices=1,
        precision="bf16-mixed" if torch.cuda.is_available() else "32-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    if isinstance(train_data, L.LightningDataModule):
        trainer.fit(module, datamodule=train_data)
    else:
        trainer.fit(module, train_dataloaders=train_data)
    return timer.seconds[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tinycnn")
    parser.add_argument("--width", type=int, default=16, help="tinycnn width (the quickstart's: 16)")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2, help="loader processes of the reference design")
    parser.add_argument("--aug", default="default", choices=["default", "rot90", "randrot"])
    args = parser.parse_args()
    model = f"tinycnn width {args.width}" if args.backbone == "tinycnn" else args.backbone
    header(f"epoch time, t-SimCNE with {model}, {args.images} images of 28 px, batch {args.batch}, aug={args.aug}")
    overrides = [f"backbone={args.backbone}", f"batch_size={args.batch}", f"aug={args.aug}", "schedule.epochs=[2,1,1]"]
    if args.backbone == "tinycnn":
        overrides.append(f"backbone.width={args.width}")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    data = load_synthblood(n_images=args.images)

    torch.manual_seed(0)
    ours = second_epoch_seconds(build_method(cfg, data.stats()), ArrayDataModule(data, args.batch, on_device="auto"))

    torch.manual_seed(0)
    module = build_method(cfg, data.stats())
    module.on_after_batch_transfer = lambda batch, dataloader_idx: batch  # views arrive ready-made
    loader = DataLoader(
        TwoPILViews(data.images, torchvision_pipeline(args.aug, data.image_size)),
        batch_size=args.batch,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=torch.cuda.is_available(),
    )
    reference = second_epoch_seconds(module, loader)
    print(f"{'design':44} {'epoch (s)':>10} {'images/s':>10}")
    for name, seconds in [(f"per-image PIL DataLoader, {args.workers} workers", reference), ("medviz", ours)]:
        print(f"{name:44} {seconds:>10.2f} {args.images / seconds:>10,.0f}")
    print(f"speed-up: {reference / ours:.2f}x")


if __name__ == "__main__":
    main()
