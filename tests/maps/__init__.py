"""Tests of the map tools."""
