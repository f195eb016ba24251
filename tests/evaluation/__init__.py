"""Tests of metrics, baselines and tables."""
