"""The training-time pieces of ``invariance.*`` and ``dataset.perturbation`` built from the data."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from medviz.data.image_arrays import ImageArrays
from medviz.data.partners import CrossBatchPartners
from medviz.errors import ConfigError

log = logging.getLogger("medviz")


def cross_batch_partners(cfg: DictConfig, data: ImageArrays) -> CrossBatchPartners | None:
    """Cross-batch positives when ``dataset.perturbation`` names a column; None otherwise. Refused,
    with the key to set, without a technical batch column or with a column the metadata lacks."""
    column = cfg.dataset.get("perturbation")
    if not column:
        return None
    batches = data.batches()
    if batches is None:
        raise ConfigError(
            f"dataset.perturbation={column} pairs images of one perturbation across technical batches, and "
            f"dataset '{data.name}' has none: name their column with dataset.batch=<column> (e.g. Metadata_Plate)"
        )
    if data.metadata is None or column not in data.metadata.columns:
        known = [] if data.metadata is None else [str(c) for c in data.metadata.columns]
        raise ConfigError(
            f"dataset.perturbation={column}: the metadata has no such column"
            + (f"; its columns are {', '.join(known[:20])}" if known else " (the dataset has no metadata table)")
        )
    values = data.metadata[column]
    codes, _ = pd.factorize(values.astype("string"), sort=True)  # missing values: -1, never paired
    probability = float(cfg.get("invariance", {}).get("cross_batch_p", 0.5))
    partners = CrossBatchPartners(np.asarray(codes), batches[0], probability, seed=int(cfg.seed))
    share = partners.share_partnered()
    message = (
        f"cross-batch positives: {share:.0%} of the images have a perturbation ({column}) in another technical "
        f"batch; {probability:.0%} of those are paired across batches in each step (weak supervision: report apart)"
    )
    if share == 0:
        log.warning(message + "; none here, so training is unsupervised as without it")
    else:
        log.info(message)
    return partners
