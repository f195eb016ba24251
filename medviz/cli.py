"""The ``medviz`` command: tools that work on finished runs (``python -m medviz`` works too).

medviz embed --run <run folder> --images <folder or .npz> [--out <folder>]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from medviz.errors import MedvizError


def _embed(args: argparse.Namespace) -> None:
    from medviz.embed import embed_into_run

    out = args.out or args.run / "embedded" / args.images.stem
    folder = embed_into_run(args.run, args.images, out, size=args.size, device=args.device)
    print(f"coordinates: {folder / 'embedded.npz'}   map: {folder / 'embedded.png'}")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="medviz", description="Tools for finished medviz runs.")
    commands = main.add_subparsers(dest="command", required=True)
    embed = commands.add_parser(
        "embed", help="put new images into an existing t-SimCNE map (the run's preprocessing, no augmentation)"
    )
    embed.add_argument("--run", type=Path, required=True, help="a finished t-SimCNE run folder")
    embed.add_argument("--images", type=Path, required=True, help="a folder of images or an .npz with 'images'")
    embed.add_argument("--out", type=Path, help="where to write embedded.npz/.png (default <run>/embedded/<name>)")
    embed.add_argument("--size", type=int, help="image side (default: the training images')")
    embed.add_argument("--device", default="auto", help="auto, cpu or cuda")
    embed.set_defaults(run_command=_embed)
    return main


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args.run_command(args)
    except MedvizError as err:
        print(f"medviz: error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
