"""Every plate-format test writes its stores into a cache of its own."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_CACHE", str(tmp_path / "cache"))
