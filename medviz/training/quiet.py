"""A log of what a user can act on: library lines that medviz knows are noise are left out.

Each filter names one message, so anything else a library says still shows. Filtered: Lightning's
advertising tip, its note that the method's ``on_after_batch_transfer`` is used with a DataModule
(medviz's design), TPU/HPU availability on machines without them, a deprecation inside Lightning's
own code, the silhouette kernel's compiler note that a CPU machine has no CUDA, and openTSNE's
progress notes; Lightning's lines also stop appearing twice when Hydra
configures logging.
"""

from __future__ import annotations

import logging
import re
import warnings

#: Substrings of library log records and warnings that carry nothing a user can act on.
NOISE = (
    "litlogger",
    "💡 Tip",
    "TPU available:",
    "HPU available:",
    "You have overridden `on_after_batch_transfer`",
    "`isinstance(treespec, LeafSpec)` is deprecated",
    "No CUDA runtime is found",
)
_LIBRARY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning")
#: Loggers whose records are filtered but never re-routed (they keep their own handlers).
_FILTERED_ONLY = ("torch.utils.cpp_extension",)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in NOISE)


_DROP = _DropNoise()


def quiet_libraries() -> None:
    """Install the filters (idempotent): warnings by message, log records by logger and message."""
    for noise in NOISE:
        warnings.filterwarnings("ignore", message=f".*{re.escape(noise)}")
    logging.getLogger("openTSNE").setLevel(logging.WARNING)
    root_prints = bool(logging.getLogger().handlers)
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if _DROP not in logger.filters:
            logger.addFilter(_DROP)
        for handler in list(logger.handlers):
            if _DROP not in handler.filters:
                handler.addFilter(_DROP)  # records of child loggers reach handlers without the logger's filter
            if root_prints and type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)  # Hydra's root handler prints it: once is enough
        if root_prints:
            logger.propagate = True
    for name in _FILTERED_ONLY:
        if _DROP not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_DROP)
    for handler in logging.getLogger().handlers:
        if _DROP not in handler.filters:
            handler.addFilter(_DROP)
