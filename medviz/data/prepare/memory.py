"""Whether a dataset is read into RAM or streamed from its memory-mapped store (``speed.ram_budget``).

A store opens as a memory map: nothing is read until it is used. When its images fit the budget
they are read into RAM once (the fastest way to train); when they do not, training gathers each
batch from the memory map in loader workers, and the images are never all in memory at once.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import replace

import numpy as np

from medviz.data.image_arrays import ImageArrays
from medviz.errors import ConfigError

log = logging.getLogger("medviz")

#: ``speed.ram_budget=auto``: this share of the machine's memory (the rest is the network's,
#: the loader workers' and the evaluation's).
AUTO_SHARE = 0.25
_UNITS = {"": 1, "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "kb": 10**3, "mb": 10**6, "gb": 10**9}


def physical_memory() -> int:
    """The machine's memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def ram_budget(value: object) -> int:
    """``speed.ram_budget`` in bytes: ``auto`` (a quarter of the machine's memory), a size such as
    ``8GiB`` or ``512MiB``, or a number of bytes."""
    if value == "auto":
        return int(AUTO_SHARE * physical_memory())
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return int(value)
    found = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", str(value))
    if found and found.group(2).lower() in _UNITS:
        try:
            return int(float(found.group(1)) * _UNITS[found.group(2).lower()])
        except ValueError:
            pass
    raise ConfigError(f"speed.ram_budget={value} is not a size: use auto, or e.g. speed.ram_budget=8GiB or 512MiB")


def _gib(size: int) -> str:
    return f"{size / 2**30:.2f} GiB"


def in_memory_if_it_fits(data: ImageArrays, budget: int) -> ImageArrays:
    """``data`` with its memory-mapped images read into RAM when they fit ``budget`` bytes; else as it is."""
    if not isinstance(data.images, np.memmap):
        return data
    size = data.images.nbytes
    if size > budget:
        log.info(
            f"dataset {data.name}: {_gib(size)} of images stream from {data.images.filename} "
            f"(speed.ram_budget is {_gib(budget)}): batches are read in loader workers"
        )
        return data
    return replace(data, images=np.array(data.images))
