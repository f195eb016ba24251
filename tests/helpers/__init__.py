"""Helpers shared by the tests: config composition, dataset writers in real formats, run starters."""
