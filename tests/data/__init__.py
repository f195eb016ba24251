"""Tests of data sources, readers and the DataModule."""
