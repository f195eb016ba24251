"""A run folder's saved config, in today's keys and module paths.

Run folders outlive the code that wrote them: a config saved before settings or modules moved is
brought up to date here, so every run folder medviz wrote still opens in the map tools.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from medviz.errors import ConfigError

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
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path} is not a run config (a YAML mapping of settings); pass a run folder")
    return upgrade_config(cfg)


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
