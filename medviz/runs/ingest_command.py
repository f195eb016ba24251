"""Building a dataset's store without training: what ``medviz ingest`` and ``python ingest.py`` run."""

from __future__ import annotations

from omegaconf import DictConfig

from medviz.errors import ConfigError
from medviz.instantiate import build
from medviz.store.ingest import IngestReport, recorded_ingests


def ingest_dataset(cfg: DictConfig) -> list[IngestReport]:
    """Bring the stores of ``cfg.dataset`` up to date (``dataset.ingest``); one report per store touched."""
    node = cfg.dataset.get("ingest")
    if node is None:
        raise ConfigError(
            f"dataset={cfg.dataset.name} is made when a run starts and has no store; ingest builds the stores of "
            "datasets read from files (folder, arrays, leukemia, medmnist, pcam, cifar10, cellprofiler, "
            "deepprofiler, masks, synthplates)"
        )
    with recorded_ingests() as reports:
        build(node, "dataset.ingest")
    return list(reports)
