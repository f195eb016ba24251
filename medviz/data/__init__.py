"""Data sources (one module each) and the DataModule that serves them."""

from medviz.data.arrays import ImageArrays
from medviz.data.datamodule import ArrayDataModule

__all__ = ["ArrayDataModule", "ImageArrays"]
