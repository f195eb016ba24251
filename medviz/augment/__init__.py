"""Augmentation: random views of uint8 batches, made on the model's device in one pass (paper §4)."""

from medviz.augment.batch import BatchAugment

__all__ = ["BatchAugment"]
