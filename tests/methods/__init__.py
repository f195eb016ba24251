"""Tests of methods, losses and stages."""
