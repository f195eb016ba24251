"""Tests of augmentations."""
