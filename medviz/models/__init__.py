"""Backbones (a registry by name) and projection heads."""
