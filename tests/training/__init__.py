"""Tests of the training run."""
