"""Shared checks for the plate formats' tests."""

from __future__ import annotations

import numpy as np
import pytest

from medviz.data.image_arrays import ImageArrays
from tests.helpers.plates import Screen


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))


def assert_crops_match_their_rows(data: ImageArrays, screen: Screen, box: int) -> None:
    """Every crop's centre pixel is the value of the object its metadata row names (identity, not order)."""
    expected = screen.expected_centre_values()
    centre = box // 2
    images = np.asarray(data.images)
    seen = set()
    for row, (image, number) in enumerate(
        zip(data.metadata["ImageNumber"], data.metadata["ObjectNumber"], strict=True)
    ):
        key = (int(image), int(number))
        assert images[row, centre, centre].tolist() == expected[key], key
        seen.add(key)
    assert len(seen) == len(data.metadata)
