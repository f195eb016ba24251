"""Check the values of a composed training config before anything is built.

Hydra already rejects unknown groups, options and keys (listing the valid ones); it accepts any
value for a known key, though, so ``batch_size=abc`` would only fail deep inside training. Here
each top-level setting is checked for its type and range, with a message naming the key, the
value and an example of a valid one.
"""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from medviz.data.prepare.memory import ram_budget
from medviz.errors import ConfigError
from medviz.training.sweep import in_multirun


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_at_least(low: int) -> tuple[Callable[[object], bool], str]:
    return (lambda v: _is_int(v) and v >= low), f"an integer >= {low}"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_size(value: object) -> bool:
    try:
        ram_budget(value)
    except ConfigError:
        return False
    return True


_BOOL = (lambda v: isinstance(v, bool), "true or false")
_AUTO_OR_BOOL = (lambda v: v == "auto" or isinstance(v, bool), "auto, true or false")

#: key -> (test, what a valid value is, an example)
RULES: dict[str, tuple[Callable[[object], bool], str, str]] = {
    "seed": (*_int_at_least(0), "seed=1"),
    "batch_size": (*_int_at_least(2), "batch_size=256"),
    "num_workers": (lambda v: v == "auto" or (_is_int(v) and v >= 0), "auto or an integer >= 0", "num_workers=4"),
    "checkpoint_every": (*_int_at_least(0), "checkpoint_every=10"),
    "method.base_lr": (lambda v: _is_number(v) and v > 0, "a number > 0", "method.base_lr=0.03"),
    "eval.knn_k": (*_int_at_least(1), "eval.knn_k=15"),
    "eval.pixel_tsne": (*_BOOL, "eval.pixel_tsne=true"),
    "eval.tsne_max_images": (
        lambda v: v is None or (_is_int(v) and v >= 2),
        "null (all images) or an integer >= 2",
        "eval.tsne_max_images=50000",
    ),
    "eval.snapshot_every": (*_int_at_least(0), "eval.snapshot_every=10"),
    "eval.snapshot_size": (*_int_at_least(2), "eval.snapshot_size=2000"),
    "eval.table_size": (*_int_at_least(0), "eval.table_size=2000"),
    "speed.data_on_device": (*_AUTO_OR_BOOL, "speed.data_on_device=auto"),
    "speed.channels_last": (*_BOOL, "speed.channels_last=true"),
    "speed.compile": (*_AUTO_OR_BOOL, "speed.compile=auto"),
    "speed.compile_augment": (*_AUTO_OR_BOOL, "speed.compile_augment=auto"),
    "speed.progress_refresh_steps": (*_int_at_least(1), "speed.progress_refresh_steps=10"),
    "speed.ram_budget": (_is_size, "auto or a size (8GiB, 512MiB, a number of bytes)", "speed.ram_budget=8GiB"),
    # Image side in pixels, checked before any file is read (a 0 or negative size failed per image).
    "dataset.size": (*_int_at_least(8), "dataset.size=28"),
    "dataset.source.size": (*_int_at_least(8), "dataset.source.size=28"),
    "dataset.n_images": (
        lambda v: v is None or (_is_int(v) and v >= 2),
        "null (all images) or an integer >= 2",
        "dataset.n_images=2000",
    ),
    "dataset.subset_seed": (*_int_at_least(0), "dataset.subset_seed=0"),
    "qc.inject": (
        lambda v: v is None or v in ("duplicates", "artefacts"),
        "null, duplicates or artefacts",
        "qc.inject=duplicates",
    ),
    "qc.count": (*_int_at_least(1), "qc.count=100"),
    "resume": (
        lambda v: v is None or isinstance(v, bool | str),
        "true, false or a run folder",
        "resume=outputs/<run folder>",
    ),
}


def _lookup(cfg: DictConfig, dotted: str) -> tuple[bool, object]:
    node: object = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _missing_keys(node: DictConfig, where: str = "") -> list[str]:
    """Keys whose value is ``???`` (must be given), without resolving any interpolation."""
    found: list[str] = []
    for key in node:
        path = f"{where}.{key!s}" if where else str(key)
        if OmegaConf.is_missing(node, key):
            found.append(path)
        elif not OmegaConf.is_interpolation(node, key) and isinstance(node[key], DictConfig):
            found += _missing_keys(node[key], path)
    return found


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for a setting that must be given and is not, or for the first setting
    whose value has the wrong type or range (train.py and ``medviz ingest`` both check with this)."""
    missing = _missing_keys(cfg)
    if missing:
        examples = {"dataset.path": "dataset.path=/path/to/images"}
        example = examples.get(missing[0], f"{missing[0]}=<value>")
        raise ConfigError(f"{', '.join(missing)} must be set; e.g. {example}")
    for key, (test, expected, example) in RULES.items():
        present, value = _lookup(cfg, key)
        if present and not test(value):
            raise ConfigError(f"{key} must be {expected}, got {value!r} ({type(value).__name__}); e.g. {example}")
    nodes = cfg.get("trainer", {}).get("num_nodes", 1)
    # A sweep's job folder is the sweep's (one for all the job's processes); a single run's is its run_dir.
    if _is_int(nodes) and nodes > 1 and not cfg.get("run_dir") and not in_multirun():
        raise ConfigError(
            f"trainer.num_nodes={nodes}: every node must write into one run folder, so set "
            "run_dir=<a folder on the file system the nodes share> (docs/sweeps-and-wandb.md, 'Several machines')"
        )
    schedule = cfg.get("schedule")
    if schedule is not None and "epochs" in schedule:
        epochs = schedule.epochs
        values = list(epochs) if not _is_int(epochs) else [epochs]
        if not all(_is_int(e) and e >= 1 for e in values):
            raise ConfigError(
                f"schedule.epochs must be positive integers, got {values}; e.g. schedule.epochs=[1000,50,450]"
            )
