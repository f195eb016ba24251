"""Training-step throughput: the full t-SimCNE step vs the bare model step on pre-made tensors.

The full step is what training runs: two augmented views of a uint8 batch already on the
device, forward, Cauchy InfoNCE, backward, SGD. The bare step skips the augmentations and feeds
two pre-made normalised views -- the limit set by the network. overhead = 1 - full / bare.
Also printed: the augmentations' share of the full step, the step rate in stage 2 (only the 2-D
layer trains), GPU memory, and the projected time of the paper's 1000 + 50 + 450 epochs on
``--project-images`` images.

    python -m benchmarks.train_step [--backbone resnet18] [--size 28] [--batch 1024] [--aug randrot]
                                    [--compile] [--compile-augment]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from functools import partial

import torch

from benchmarks.common import header
from medviz.augment import BatchAugment
from medviz.methods.stages import three_stage
from medviz.methods.tsimcne import TSimCNE
from medviz.models.backbones import build_backbone
from medviz.models.preprocess import Preprocess

AUGS = {"default": {}, "rot90": {"dihedral": True}, "randrot": {"dihedral": True, "rotate_degrees": 45.0}}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def rate(step, n_steps: int, images_per_step: int, device: torch.device) -> float:
    """Images per second over ``n_steps`` calls of ``step`` after 3 warm-up calls; one sync at the end."""
    for _ in range(3):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(n_steps):
        step()
    sync(device)
    return n_steps * images_per_step / (time.perf_counter() - start)


def build(args: argparse.Namespace, device: torch.device) -> TSimCNE:
    kwargs = {"width": args.width} if args.backbone == "tinycnn" else {}
    module = TSimCNE(
        build_backbone(args.backbone, **kwargs),
        augment=BatchAugment(fill=(0.8, 0.7, 0.75), **AUGS[args.aug]),
        preprocess=Preprocess((0.5,) * 3, (0.25,) * 3),
        schedule=three_stage(),
        optimizer=partial(torch.optim.SGD, momentum=0.9, weight_decay=5e-4),
        lr=0.12,
    ).to(device)
    module.channels_last = True  # the default (speed.channels_last): faster convolutions on CPU and GPU
    if module.channels_last:
        module.to(memory_format=torch.channels_last)
    if args.compile:
        module.backbone.compile()
    if args.compile_augment:
        module.augment.compile(dynamic=False)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18", help="resnet18, resnet18_imagenet or tinycnn")
    parser.add_argument("--width", type=int, default=32, help="tinycnn width")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--aug", default="randrot", choices=sorted(AUGS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true", help="torch.compile the backbone")
    parser.add_argument("--compile-augment", action="store_true", help="torch.compile the augmentations")
    parser.add_argument("--project-images", type=int, default=18_000, help="dataset size for the projection")
    args = parser.parse_args()
    compiled = [name for name, on in (("backbone", args.compile), ("augmentations", args.compile_augment)) if on]
    header(
        f"training step, {args.backbone} at {args.size} px, batch {args.batch}, aug={args.aug}, "
        f"compiled: {', '.join(compiled) or 'nothing'}"
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module = build(args, device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    images = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8, device=device)
    layout = torch.channels_last if module.channels_last else torch.contiguous_format

    def views() -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(
            module.preprocess.normalise(module.augment(images)).contiguous(memory_format=layout) for _ in range(2)
        )

    def model_step(view_a: torch.Tensor, view_b: torch.Tensor, optimiser: torch.optim.Optimizer) -> None:
        with autocast:
            loss = module.compute_loss(view_a, view_b)["loss"]
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    fixed = views()
    results = {}
    for stage in (0, 1):
        module.enter_stage(stage)
        optimiser = module.make_optimizer(module.trainable_parameters(), lr=0.12)
        results[stage] = {
            "full": rate(lambda opt=optimiser: model_step(*views(), opt), args.steps, args.batch, device),
            "bare": rate(lambda opt=optimiser: model_step(*fixed, opt), args.steps, args.batch, device),
        }
    augment_rate = rate(views, args.steps, args.batch, device)
    full, bare = results[0]["full"], results[0]["bare"]
    print(f"full step  (augment + forward + backward + SGD): {full:>10,.0f} images/s")
    print(f"bare model step (pre-made views):                 {bare:>10,.0f} images/s")
    print(f"ratio full/bare {full / bare:.3f}   overhead {1 - full / bare:.1%}")
    # The full and bare steps differ only by the augmentations, so the overhead is their share of
    # the step. Timed alone they look costlier: on a GPU, launching their kernels then stalls the
    # host, while in a real step it overlaps with the previous step's backward pass.
    print(f"augmentation share of the step: {1 - full / bare:.1%} (the full step's time beyond the bare step's)")
    print(f"augmentation timed alone (2 views, no overlap): {augment_rate:,.0f} images/s")
    print(f"stage 2 (2-D layer only): full {results[1]['full']:,.0f} images/s, bare {results[1]['bare']:,.0f}")
    if device.type == "cuda":
        print(f"GPU memory: peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated")
    steps = args.project_images // args.batch
    seconds = steps * args.batch * ((1000 + 450) / full + 50 / results[1]["full"])
    print(
        f"projected 1000+50+450 epochs on {args.project_images:,} images ({steps} steps/epoch): "
        f"{seconds / 60:.1f} min of training steps"
    )


if __name__ == "__main__":
    main()
