"""A run folder's saved config, in today's keys and module paths.

Run folders outlive the code that wrote them: a config saved before settings or modules moved is
brought up to date here, so every run folder medviz wrote still opens in the map tools.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from medviz.errors import ConfigError

#: The third-party objects medviz's own ``conf/`` builds: the only ones a run folder may name.
THIRD_PARTY_TARGETS = frozenset(
    {
        "lightning.Trainer",
        "lightning.pytorch.Trainer",
        "lightning.pytorch.loggers.CSVLogger",
        "lightning.pytorch.loggers.WandbLogger",
        "medviz.training.sweep.SweepSummary",
    }
)
#: Loaders that run a pickle's code: never built from a run folder, whatever path leads to them.
PICKLE_LOADERS = ("torch.load", "numpy.load", "pickle.", "pandas.read_pickle", "joblib.load", "dill.", "cloudpickle.")

#: Where config ``_target_`` paths of earlier releases live now (the longest matching prefix wins).
MOVED_TARGETS: dict[str, str] = {
    "medviz.schedules.": "medviz.methods.stages.",
    "medviz.data.synthblood.": "medviz.data.synthetic.synthblood.",
    "medviz.data.synthcells.": "medviz.data.synthetic.synthcells.",
    "medviz.data.folder.": "medviz.data.sources.folder.",
    "medviz.data.leukemia.": "medviz.data.sources.leukemia.",
    "medviz.data.medmnist_source.": "medviz.data.sources.medmnist.",
    "medviz.data.pcam.": "medviz.data.sources.pcam.",
    "medviz.data.cifar10.": "medviz.data.sources.cifar10.",
    "medviz.data.digits.": "medviz.data.sources.digits.",
    "medviz.data.array_source.": "medviz.data.sources.arrays.",
}


def saved_config(run_dir: Path) -> Path | None:
    """The run's resolved config: ``config.yaml``, or the ``config-resumed.yaml`` of a resumed run; None if neither."""
    for name in ("config.yaml", "config-resumed.yaml"):
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def load_run_config(run_dir: Path) -> DictConfig:
    """The saved config of the run in ``run_dir``, upgraded to today's keys (:func:`upgrade_config`)."""
    path = saved_config(run_dir)
    if path is None:
        raise ConfigError(f"{run_dir} is not a training run folder (no config.yaml); pass a run folder")
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # YAML's and OmegaConf's parse errors have no common base
        raise ConfigError(f"{path} cannot be read as a run config ({err}); pass the folder medviz wrote") from err
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path} is not a run config (a YAML mapping of settings); pass a run folder")
    cfg = upgrade_config(cfg)
    check_targets(cfg, path)
    return cfg


def _targets(node: DictConfig | ListConfig, where: str = "") -> list[tuple[str, object]]:
    """Every ``_target_`` below ``node`` as (its key, e.g. ``dataset.source._target_``; its value)."""
    found: list[tuple[str, object]] = []
    items = node.items() if isinstance(node, DictConfig) else enumerate(node)
    for key, value in items:
        path = f"{where}.{key!s}" if where else str(key)
        if isinstance(value, (DictConfig, ListConfig)):
            found += _targets(value, path)
        elif key == "_target_":
            found.append((path, value))
    return found


def _locate(target: str) -> object | None:
    """The object a dotted path names (module, then attributes), or None; imports only modules the
    path names, and builds nothing."""
    parts = target.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for name in parts[split:]:
                obj = getattr(obj, name)
        except AttributeError:
            return None
        return obj
    return None


def allowed_target(target: object) -> bool:
    """Whether a run folder may name ``target``: a public class or function defined in medviz, a torch
    optimiser, or one of :data:`THIRD_PARTY_TARGETS` -- never a loader of pickles.

    The object must be medviz's own: ``medviz.runs.checkpoints.torch.load`` names a medviz module
    but leads to ``torch.load``, and is refused.
    """
    if not isinstance(target, str) or any(target.startswith(loader) for loader in PICKLE_LOADERS):
        return False
    if target in THIRD_PARTY_TARGETS:
        return True
    if not target.startswith(("medviz.", "torch.optim.")):
        return False  # nothing else is even imported
    obj = _locate(target)
    if obj is None or not callable(obj):
        return False
    name = target.rsplit(".", 1)[1]
    if target.startswith("medviz."):
        # Defined in medviz under that name (packages re-export their classes), and public.
        defined_in_medviz = str(getattr(obj, "__module__", "")).startswith("medviz.")
        return defined_in_medviz and getattr(obj, "__qualname__", "") == name and not name.startswith("_")
    if target.startswith("torch.optim.") and isinstance(obj, type):
        import torch

        return issubclass(obj, torch.optim.Optimizer) and target.count(".") == 2
    return False


def check_targets(cfg: DictConfig, source: Path | str) -> None:
    """Refuse a config that would build anything but medviz's own objects and those of its ``conf/``.

    A run folder is something people share: its ``config.yaml`` decides what the map tools build,
    so it may not name a loader of pickles (``torch.load``, ``numpy.load``, ``pickle`` ...) or any
    other callable; the message names the key.
    """
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    try:
        OmegaConf.resolve(resolved)  # an interpolation (oc.decode, say) can make a node: check what it makes
    except Exception as err:
        raise ConfigError(f"{source}: the run config cannot be read ({err}); pass the folder medviz wrote") from err
    for key, target in _targets(resolved):
        if not allowed_target(target):
            raise ConfigError(
                f"{source}: {key} names {target!r}, which medviz does not build from a run folder (only its own "
                "classes and functions and the third-party ones its conf/ uses, never a loader of pickles); "
                "if this run folder came from someone else, ask them for the folder medviz wrote"
            )


def moved_target(target: str) -> str:
    """``target`` with a module path of an earlier release replaced by today's."""
    for old in sorted(MOVED_TARGETS, key=len, reverse=True):
        if target.startswith(old):
            return MOVED_TARGETS[old] + target[len(old) :]
    return target


def _rewrite_targets(node: DictConfig | ListConfig) -> None:
    items = node.items() if isinstance(node, DictConfig) else enumerate(node)
    for key, value in list(items):
        if isinstance(value, (DictConfig, ListConfig)):
            _rewrite_targets(value)
        elif key == "_target_" and isinstance(value, str):
            node[key] = moved_target(value)


def upgrade_config(cfg: DictConfig) -> DictConfig:
    """A run config saved by an earlier release, in today's keys and ``_target_`` paths.

    Configs saved before every method took one optimiser config and one schedule kept SGD's
    settings in ``method.module`` (and SimCLR's/BYOL's length as ``method.module.epochs``); module
    paths that have moved since are rewritten by :data:`MOVED_TARGETS`.
    """
    with open_dict(cfg):
        method = cfg.method
        if "optimizer" not in method:
            module = method.module
            momentum, decay = module.pop("momentum", 0.9), module.pop("weight_decay", 5e-4)
            method.optimizer = {
                "_target_": "torch.optim.SGD",
                "_partial_": True,
                "momentum": momentum,
                "weight_decay": decay,
            }
            method.grad_clip = module.pop("grad_clip", None)
            module.pop("schedule", None)
            if "epochs" in module:
                epochs, warmup = module.pop("epochs"), module.pop("warmup_epochs", 10)
                cfg.schedule = {
                    "_target_": "medviz.methods.stages.single_stage",
                    "epochs": epochs,
                    "warmup_epochs": warmup,
                }
        _rewrite_targets(cfg)
    return cfg
