"""Building objects from config nodes, with errors a user can act on (free of PyTorch)."""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from medviz.errors import ConfigError, MedvizError


def build(node: DictConfig, group: str, **kwargs):
    """``instantiate(node)``, with errors a user can act on instead of Hydra's wrapped traceback.

    Our own errors already say what to do and pass through; anything else raised while building
    (a wrong value deep in a group, e.g. ``aug.transform.crop_scale=abc``) names the group.
    """
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, MedvizError):
            raise cause from None
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(err)
        raise ConfigError(f"could not build `{group}` from the config ({detail}); check the {group}.* values") from err
