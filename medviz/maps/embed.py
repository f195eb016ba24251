"""Put new images into an existing map: the trained network, the run's preprocessing, no augmentation.

t-SimCNE's network outputs the map itself, so new images are placed by one forward pass (SimCLR
and BYOL maps come from t-SNE and have no such mapping: they are refused with a clear message).
"""

from __future__ import annotations

import json
import logging
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import open_dict

from medviz.data.image_arrays import ImageStats
from medviz.data.readers.dtypes import as_stored
from medviz.data.readers.images import IMAGE_SUFFIXES, read_many
from medviz.data.sources.arrays import to_nhwc
from medviz.errors import ConfigError, DataError
from medviz.maps.new_batches import (
    embed_images,
    new_image_batches,
    technical_settings,
    warn_outside_training_range,
)
from medviz.maps.plots import plot_map
from medviz.methods.base import ContrastiveMethod, upgrade_state_dict
from medviz.runs.checkpoints import newest_checkpoint
from medviz.runs.config import load_run_config
from medviz.runs.files import write_spreadsheet_csv
from medviz.runs.rebuild import build_method

log = logging.getLogger("medviz")


def load_trained(run_dir: Path, device: torch.device) -> ContrastiveMethod:
    """The run's final network (newest readable checkpoint, weights only) in eval mode on ``device``.

    The model is built with the normalisation statistics and border colour its checkpoint holds,
    so it preprocesses new images exactly as it did the training images.
    """
    cfg = load_run_config(run_dir)
    with open_dict(cfg):
        cfg.speed.compile = False
        cfg.speed.compile_augment = False
    _, state = newest_checkpoint(run_dir)
    weights = upgrade_state_dict(state["state_dict"])
    stats = ImageStats(
        mean=tuple(weights["preprocess.mean"].flatten().tolist()),
        std=tuple(weights["preprocess.std"].flatten().tolist()),
        fill=tuple(weights["augment.fill"].flatten().tolist()),
    )
    module = build_method(cfg, stats)
    module.load_state_dict(weights)
    if not module.has_map:
        raise ConfigError(
            f"{run_dir} was trained with method={cfg.method.name}, whose map is a t-SNE of its features: "
            "only t-SimCNE runs map new images directly"
        )
    return module.to(device).eval()


def training_image_size(run_dir: Path) -> int:
    metrics = run_dir / "metrics.json"
    size = json.loads(metrics.read_text()).get("image_size") if metrics.is_file() else None
    if size is None:
        raise ConfigError(f"{run_dir}/metrics.json does not record the training image size; pass --size")
    return int(size)


def read_images(source: Path, size: int, grayscale_as_rgb: bool = True) -> tuple[np.ndarray, list[str]]:
    """Images (M, size, size, C) in their stored dtype and their names, from a folder (recursively) or an .npz.

    An .npz may hold ``images`` or MedMNIST's ``<split>_images`` arrays, (N, H, W[, C]) or (N, C, H, W).
    ``grayscale_as_rgb``: 8-bit (N, H, W) arrays become RGB, as MedMNIST's grayscale sets are read.
    """
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
        images, kept = read_many(files, size, str(source))
        return images, [str(p.relative_to(source)) for p in kept]
    if source.suffix == ".npz" and source.is_file():
        arrays, keys = _npz_images(source)
        what = f"{source} ({', '.join(keys)})"
        images = as_stored(np.concatenate([to_nhwc(a, what) for a in arrays]), what)
        if grayscale_as_rgb and images.dtype == np.uint8 and images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        if images.shape[1:3] != (size, size):
            raise DataError(
                f"{source}: images must be {size}x{size} like the training images, got "
                f"{images.shape[1]}x{images.shape[2]}; resize them first or pass a folder (resized on reading)"
            )
        names = [f"{key}[{i}]" for key, a in zip(keys, arrays, strict=True) for i in range(len(a))]
        return images, names
    raise DataError(f"--images {source}: expected a folder of images or an .npz file")


def _npz_images(source: Path) -> tuple[list[np.ndarray], list[str]]:
    """The image arrays of an .npz and their keys; a file that is not a readable npz, or whose images
    are pickled objects (never loaded), is refused naming the file."""
    if not zipfile.is_zipfile(source):  # numpy would call any other file "pickled data"
        raise DataError(f"{source} is not an .npz (not a zip archive of arrays); write it with np.savez")
    try:
        with np.load(source, allow_pickle=False) as archive:
            keys = ["images"] if "images" in archive else sorted(k for k in archive.files if k.endswith("_images"))
            if not keys:
                raise DataError(f"{source} has no 'images' or '<split>_images' array (it has {archive.files})")
            arrays = [archive[key] for key in keys]
    except DataError:
        raise
    except ValueError as err:
        if "pickle" in str(err) or "Object arrays" in str(err):
            raise DataError(
                f"{source}: its images are Python objects (a pickle), which medviz never loads; save them as a "
                "numeric array, e.g. np.savez(path, images=np.stack(images).astype(np.uint8))"
            ) from err
        raise DataError(f"{source} is not a readable .npz ({err}); write it with np.savez") from err
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(
            f"{source} is not a readable .npz ({type(err).__name__}: {err}); write it with np.savez"
        ) from err
    return arrays, keys


def check_like_training(images: np.ndarray, module: ContrastiveMethod, run_dir: Path, source: Path) -> None:
    """Refuse images the network was not trained on: another channel count, or another bit depth."""
    channels = module.preprocess.channels
    if images.shape[-1] != channels:
        raise DataError(
            f"{source}: images with {images.shape[-1]} channel(s), but the network of {run_dir} was trained on "
            f"{channels}-channel images; give images with the same channels, in the same order"
        )
    metrics = run_dir / "metrics.json"
    trained = json.loads(metrics.read_text()).get("dtype") if metrics.is_file() else None
    if trained is not None and str(images.dtype) != trained and not module.preprocess.scales_per_image:
        raise DataError(
            f"{source}: images are {images.dtype}, but the network of {run_dir} was trained on {trained} images, "
            "whose intensity range it uses: give images of the same bit depth"
        )


def embed_into_run(run_dir: Path, source: Path, out_dir: Path, size: int | None = None, device: str = "auto") -> Path:
    """Embed ``source`` with the run's network; write ``embedded.npz`` and ``embedded.png`` to ``out_dir``."""
    if not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} does not exist")
    module = load_trained(run_dir, _device(device))
    images, names = read_images(source, size or training_image_size(run_dir), module.preprocess.channels == 3)
    check_like_training(images, module, run_dir, source)
    groups, rows = technical_settings(run_dir, module, images, new_image_batches(None, None, len(images)))
    if rows is None:
        warn_outside_training_range(images, module, str(source))
    coords = embed_images(module, images, groups=groups, rows=rows)
    _save_embedded(run_dir, out_dir, coords, names)
    log.info(f"embedded {len(coords)} images from {source} into {out_dir}")
    return out_dir


def _device(device: str) -> torch.device:
    """``--device``: auto (the GPU when there is one), cpu or cuda."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _save_embedded(run_dir: Path, out_dir: Path, coords: np.ndarray, names: list[str]) -> None:
    """``embedded.npz`` (coordinates (M, 2) and names) and ``embedded.png``: the run's map with the new points."""
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "embedded.npz", embedding=coords, names=np.array(names))
    existing = np.load(run_dir / "embedding.npz")
    plot_map(
        existing["embedding"],
        existing["labels"],
        list(existing["class_names"]),
        out_dir / "embedded.png",
        title=f"{len(coords)} new images (black) in the map of {run_dir.name}",
        overlay=coords,
    )


def dataset_images(
    run_dir: Path, overrides: list[str]
) -> tuple[np.ndarray, list[str], pd.DataFrame | None, str, str | None]:
    """The images of the run's own dataset settings changed by ``overrides`` (``dataset.plate=P3``,
    ``dataset.path=<new export>``): the same format, box, size, channels and illumination as the run's.

    Returns the images (M, H, W, C), each one's name (its metadata ``path`` where it has one), the
    metadata table (or None), what they are, for messages, and the column of their technical batch
    (or None).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from medviz.instantiate import build

    cfg = load_run_config(run_dir)
    wrong = [o for o in overrides if "=" not in o or not o.split("=", 1)[0].startswith("dataset.")]
    if wrong:
        raise ConfigError(
            f"medviz embed: {', '.join(wrong)}: give settings of the run's dataset as dataset.<key>=<value>, "
            "e.g. dataset.plate=P3 or dataset.path=<tables of the new plates>"
        )
    # A run folder keeps its config resolved: a setting reaches the source's arguments of the same name too.
    source_keys = set(cfg.dataset.get("source") or {})
    mirrored = [f"dataset.source.{o.split('=', 1)[0][len('dataset.') :]}={o.split('=', 1)[1]}" for o in overrides]
    mirrored = [m for m in mirrored if m.split("=", 1)[0].removeprefix("dataset.source.") in source_keys]
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([*overrides, *mirrored]))
        node = cfg.dataset.get("source")
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"medviz embed: {', '.join(overrides)}: {err}") from None
    if node is None:
        raise ConfigError(f"{run_dir}: its config names no dataset source")
    data = build(cfg.dataset.source, "dataset.source")
    metadata = data.metadata
    if metadata is not None and "path" in metadata.columns:
        names = [str(p) for p in metadata["path"]]
    elif data.files is not None:
        names = [str(f) for f in data.files]
    else:
        names = [str(i) for i in range(len(data))]
    return (
        np.asarray(data.images),
        names,
        metadata,
        f"{data.name} ({' '.join(overrides)})",
        data.batch_column or cfg.dataset.get("batch"),
    )


def embed_dataset_into_run(run_dir: Path, overrides: list[str], out_dir: Path, device: str = "auto") -> Path:
    """Embed the crops (or images) the run's dataset gives with ``overrides`` -- new plates of the same
    screen -- into the run's map; write ``embedded.npz``, ``embedded.png`` and ``embedded_points.csv``
    (x, y and every metadata column) to ``out_dir``."""
    if not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} does not exist")
    module = load_trained(run_dir, _device(device))
    images, names, metadata, what, batch_column = dataset_images(run_dir, overrides)
    size = training_image_size(run_dir)
    if images.shape[1:3] != (size, size):
        raise DataError(
            f"{what}: images of {images.shape[1]}x{images.shape[2]} px, but the run trained on {size}x{size}; "
            "keep dataset.size (and dataset.box) as the run had them"
        )
    check_like_training(images, module, run_dir, Path(what))
    groups, rows = technical_settings(run_dir, module, images, new_image_batches(metadata, batch_column, len(images)))
    if rows is None:
        warn_outside_training_range(images, module, what)
    coords = embed_images(module, images, groups=groups, rows=rows)
    _save_embedded(run_dir, out_dir, coords, names)
    table = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1]})
    if metadata is not None:
        table = pd.concat([table, metadata.reset_index(drop=True)], axis=1)
    else:
        table["name"] = names
    write_spreadsheet_csv(table, out_dir / "embedded_points.csv")
    log.info(f"embedded {len(coords)} images of {what} into {out_dir}")
    return out_dir
