"""The ``medviz`` command: tools that work on finished runs (``python -m medviz`` works too),
and ``medviz ingest`` to build a dataset's store ahead of training.

medviz embed --run <run folder> --images <folder or .npz> [--out <folder>]
medviz embed --run <run folder> dataset.plate=P3 [dataset.path=<tables>]
medviz export --run <run folder> [--format h5ad|parquet] [--no-features]
medviz ingest dataset=folder dataset.path=<folder> [dataset.size=64]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from medviz.errors import ConfigError, MedvizError


def _embed(args: argparse.Namespace) -> None:
    from medviz.maps.embed import embed_dataset_into_run, embed_into_run

    if (args.images is None) == (not args.overrides):
        raise ConfigError(
            "medviz embed: give either --images <folder|npz> or settings of the run's dataset, e.g. "
            "dataset.plate=P3 (new plates of the same screen, cut as the run's crops were)"
        )
    if args.overrides:
        name = "_".join(o.split("=", 1)[-1] for o in args.overrides).replace("/", "_")[:80] or "dataset"
        out = args.out or args.run / "embedded" / name
        _say_if_replacing(out / "embedded.npz", out / "embedded.png")
        folder = embed_dataset_into_run(args.run, list(args.overrides), out, device=args.device)
        points = folder / "embedded_points.csv"
        print(f"coordinates: {folder / 'embedded.npz'}   points: {points}   map: {folder / 'embedded.png'}")
        return
    # The full name: images/ and images.npz are different inputs and get different folders.
    out = args.out or args.run / "embedded" / args.images.resolve().name
    _say_if_replacing(out / "embedded.npz", out / "embedded.png")
    folder = embed_into_run(args.run, args.images, out, size=args.size, device=args.device)
    print(f"coordinates: {folder / 'embedded.npz'}   map: {folder / 'embedded.png'}")


def _ingest(args: argparse.Namespace) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from medviz.runs.ingest_command import ingest_dataset
    from medviz.training.config_checks import check_config
    from medviz.training.run_folder import register_resolvers

    register_resolvers()  # the resolvers conf/ names, as train.py registers them
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name="train", overrides=args.overrides)
    except (HydraException, OmegaConfBaseException) as err:
        said = str(err).split("\nConfig search path")[0].rstrip()
        hint = "medviz ingest takes train.py's settings, e.g. dataset=folder dataset.path=<folder>"
        raise ConfigError(f"{said}\n{hint}") from None
    check_config(cfg)  # the same checks and messages as train.py
    for report in ingest_dataset(cfg):
        print(f"store {report.store}: {report}")


def config_dir() -> Path:
    """The project's ``conf/`` folder (beside the package in a checkout or an editable install)."""
    found = Path(__file__).resolve().parent.parent / "conf"
    if not (found / "train.yaml").is_file():
        raise ConfigError(f"no config folder at {found}: run medviz from a checkout installed with make install")
    return found


def _say_if_replacing(*outputs: Path) -> None:
    """Map tools write to fixed places in the run folder: say when an earlier result is replaced."""
    earlier = [str(p) for p in outputs if p.exists() and (p.is_file() or any(p.iterdir()))]
    if earlier:
        print(f"replacing earlier results: {', '.join(earlier)} (pass --out <path> to keep them)", flush=True)


def _finished_run(run_dir: Path):
    """(embedding.npz's arrays, the run's images as trained -- planted problems included --, planted mask or None)."""
    from medviz.runs.rebuild import open_finished_run

    return open_finished_run(run_dir)


def _named_channels(data, names: str | None):
    """``data`` with the channel names given on the command line (``--channel-names DNA,Mito,...``):
    a finished run relabelled without training again."""
    if names is None:
        return data
    from dataclasses import replace

    given = tuple(n.strip() for n in names.split(","))
    if len(given) != data.channels or not all(given):
        raise ConfigError(
            f"--channel-names gives {len(given)} names ({names!r}), but the run's images have {data.channels} "
            f"channel(s): give one non-empty name per channel, comma-separated"
        )
    return replace(data, channel_names=given)


def _titled(name: str, legend: str) -> str:
    return f"{name} ({legend})" if legend else name


def _qc(args: argparse.Namespace) -> None:
    from medviz.evaluation.batch_mixing import batch_statement
    from medviz.maps.qc import check_settings, find_groups, recall, sampling_note
    from medviz.maps.qc_report import write_report

    check_settings(args.min_size, args.tight_spacing, args.island_fraction, args.island_separation)
    saved, data, injected = _finished_run(args.run)
    coords, labels = saved["embedding"], saved["labels"]
    shown = data.display_images()
    groups = find_groups(
        coords,
        shown,
        labels,
        min_size=args.min_size,
        tight_spacing=args.tight_spacing,
        island_fraction=args.island_fraction,
        island_separation=args.island_separation,
        cluster_sample=args.cluster_sample,
    )
    note = sampling_note(len(coords), args.cluster_sample, args.min_size)
    if note:
        print(f"note: {note}")
    batches = data.batches()
    if batches is not None:
        said = batch_statement(coords, batches[0], labels, str(data.batch_column))
        print(f"batches: {said}")
        note = f"{note}. {said[0].upper()}{said[1:]}" if note else f"{said[0].upper()}{said[1:]}"
    out = args.out or args.run / "qc"
    _say_if_replacing(out)
    report = write_report(out, coords, labels, list(saved["class_names"]), shown, groups, injected, note)
    for number, group in enumerate(groups):
        correlation = f", image correlation {group.correlation}" if group.correlation else ""
        print(f"group {number}: {group.kind}, {group.size} images{correlation}")
    if injected is not None:
        print(f"planted images flagged: {recall(groups, injected):.3f} of {int(injected.sum())}")
    print(f"report: {report}")


def _figures(args: argparse.Namespace) -> None:
    from medviz.maps.colouring import column_values
    from medviz.maps.figures import all_figures

    saved, data, _ = _finished_run(args.run)
    data = _named_channels(data, args.channel_names)
    colour_by = None
    if args.colour_by:
        colour_by = (args.colour_by, column_values(data.metadata, args.colour_by))
    out = args.out or args.run / "figures"
    _say_if_replacing(out)
    paths = all_figures(
        saved["embedding"],
        saved["labels"],
        list(saved["class_names"]),
        data.display_images(),
        out,
        _titled(data.name, data.channel_legend()),
        colour_by=colour_by,
        channel_legend=data.channel_legend(),
    )
    print("\n".join(str(p) for p in paths))


def _relative_names(data, run_dir: Path) -> list[str]:
    """Each point's file, relative to the dataset's folder (the run's ``path`` column where it has one)."""
    if data.metadata is not None and "path" in data.metadata.columns:
        return [str(p) for p in data.metadata["path"]]
    if data.files is None:
        return []
    from medviz.data.prepare.metadata import relative_paths
    from medviz.runs.config import load_run_config

    return relative_paths(data.files, load_run_config(run_dir).dataset.get("path"))


def _explore(args: argparse.Namespace) -> None:
    runs = list(args.run)
    if len(runs) > 2:
        raise ConfigError(
            f"medviz explore shows one map, or two side by side: give --run once or twice, not {len(runs)}"
        )
    out = args.out or runs[0] / ("explorer.html" if len(runs) == 1 else f"explorer-vs-{runs[1].name}.html")
    _say_if_replacing(out)
    pages = [_explorer_page(run, args) for run in runs]
    if len(runs) == 1:
        out.write_text(pages[0][0])
    else:
        from medviz.maps.explorer_pair import match_points, pair_page

        first_to_second, second_to_first = match_points(pages[0][1], pages[1][1])
        out.write_text(pair_page([p for p, _ in pages], [r.name for r in runs], first_to_second, second_to_first))
    print(f"explorer: {out} (open it in a browser; it works offline)")


def _explorer_page(run_dir: Path, args: argparse.Namespace) -> tuple[str, list[str]]:
    """One run's explorer page and each point's identity (its path, else ``<dataset>#<index>``)."""
    from medviz.data.display import colour_hex, unit_bytes_view
    from medviz.maps.explorer import ChannelView, explorer_html

    saved, data, _ = _finished_run(run_dir)
    data = _named_channels(data, args.channel_names)
    channels = None
    if data.channel_legend():  # multi-channel images: the explorer composites them, channel by channel
        names = data.channel_names or tuple(f"channel {c}" for c in range(data.channels))
        channels = ChannelView(
            unit_bytes_view(data.images, data.scale()), names, colour_hex(data.channels, data.channel_colours)
        )
    names = _relative_names(data, run_dir)
    page = explorer_html(
        saved["embedding"],
        saved["labels"],
        list(saved["class_names"]),
        data.display_images(),
        names,
        title=_titled(run_dir.name, data.channel_legend()),
        max_thumbnails=args.max_thumbnails,
        channels=channels,
        metadata=data.metadata,
    )
    identity = names or [f"{data.name}#{int(i)}" for i in saved["index"]]
    return page, identity


def _export(args: argparse.Namespace) -> None:
    from medviz.maps.export import export_h5ad, export_parquet

    write = export_h5ad if args.format == "h5ad" else export_parquet
    path = write(args.run, args.out, features=not args.no_features)
    print(f"{args.format}: {path}")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="medviz", description="Tools for finished medviz runs, and ingest.")
    commands = main.add_subparsers(dest="command", required=True)
    figures = commands.add_parser("figures", help="the map, the map with thumbnails and a 10x10 image grid (PNG+PDF)")
    figures.add_argument("--run", type=Path, required=True, help="a finished run folder")
    figures.add_argument("--out", type=Path, help="where to write them (default <run>/figures)")
    figures.add_argument("--channel-names", help="one name per channel, comma-separated (default: the data's)")
    figures.add_argument("--colour-by", help="also colour the map by this metadata column (e.g. Metadata_Plate)")
    figures.set_defaults(run_command=_figures)
    explore = commands.add_parser(
        "explore", help="one self-contained HTML explorer of the map; --run twice: two maps side by side, linked"
    )
    explore.add_argument(
        "--run", type=Path, required=True, action="append", help="a finished run folder (twice: two linked maps)"
    )
    explore.add_argument(
        "--out", type=Path, help="the HTML file (default <first run>/explorer.html, explorer-vs-<second run>.html)"
    )
    explore.add_argument("--channel-names", help="one name per channel, comma-separated (default: the data's)")
    explore.add_argument("--max-thumbnails", type=int, default=5000, help="points that carry a thumbnail")
    explore.set_defaults(run_command=_explore)
    qc = commands.add_parser("qc", help="flag tight clusters and isolated islands of a map, with thumbnails")
    qc.add_argument("--run", type=Path, required=True, help="a finished run folder")
    qc.add_argument("--out", type=Path, help="where the report goes (default <run>/qc)")
    qc.add_argument("--min-size", type=int, default=10, help="smallest group worth flagging")
    qc.add_argument(
        "--tight-spacing",
        type=float,
        default=0.5,
        help="a cluster is tight when its points' 10th-neighbour distance is under this share of the map's",
    )
    qc.add_argument(
        "--island-fraction", type=float, default=0.05, help="an island holds fewer than this share of the points"
    )
    qc.add_argument(
        "--island-separation",
        type=float,
        default=1.6,
        help="an island joins the rest of the map only across this many typical spacings (mutual reachability)",
    )
    qc.add_argument(
        "--cluster-sample",
        type=int,
        default=50_000,
        help="larger maps are clustered (HDBSCAN, super-linear) on a seeded sample of this many points",
    )
    qc.set_defaults(run_command=_qc)
    embed = commands.add_parser(
        "embed", help="put new images into an existing t-SimCNE map (the run's preprocessing, no augmentation)"
    )
    embed.add_argument("--run", type=Path, required=True, help="a finished t-SimCNE run folder")
    embed.add_argument("--images", type=Path, help="a folder of images or an .npz with 'images'")
    embed.add_argument(
        "overrides",
        nargs="*",
        help="instead of --images: the run's dataset with these settings, e.g. dataset.plate=P3 (new plates "
        "of a screen, read from the same tables' format and cut as the run's crops were)",
    )
    embed.add_argument("--out", type=Path, help="where to write embedded.npz/.png (default <run>/embedded/<name>)")
    embed.add_argument("--size", type=int, help="image side (default: the training images')")
    embed.add_argument("--device", default="auto", help="auto, cpu or cuda")
    embed.set_defaults(run_command=_embed)
    export = commands.add_parser(
        "export", help="the map, its metadata and features as AnnData (scanpy, cellxgene) or a Parquet profile table"
    )
    export.add_argument("--run", type=Path, required=True, help="a finished run folder")
    export.add_argument("--format", choices=["h5ad", "parquet"], default="h5ad", help="default h5ad")
    export.add_argument("--out", type=Path, help="the file (default <run>/map.h5ad or <run>/profiles.parquet)")
    export.add_argument("--no-features", action="store_true", help="leave the backbone's features out (large maps)")
    export.set_defaults(run_command=_export)
    ingest = commands.add_parser(
        "ingest",
        help="build or update a dataset's store ahead of training (new, changed and removed files only)",
        description="medviz ingest dataset=folder dataset.path=/data/cells [dataset.size=64] -- train.py's settings",
    )
    ingest.add_argument("overrides", nargs="+", help="the same key=value settings as train.py")
    ingest.set_defaults(run_command=_ingest)
    return main


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args.run_command(args)
    except MedvizError as err:
        print(f"medviz: error: {err}", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 1))


if __name__ == "__main__":
    main()
