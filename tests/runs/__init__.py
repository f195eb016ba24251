"""Tests of reading and rebuilding run folders."""
