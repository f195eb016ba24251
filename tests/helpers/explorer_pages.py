"""The explorer page in headless Chromium (fixture `browser`: tests/maps/conftest.py) and the maps its tests draw."""

from __future__ import annotations

import time

import numpy as np


def tiny_map(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    coords = rng.normal(size=(n, 2)) + labels[:, None] * 4.0
    images = rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
    return coords, labels, ["a", "b", "c"], images


def open_map(browser, path) -> None:
    browser.get(path.as_uri())
    deadline = time.monotonic() + 30
    while not browser.execute_script("return Boolean(window.medviz && window.medviz.ready)"):
        assert time.monotonic() < deadline, "the explorer did not finish loading"
        time.sleep(0.05)


def move_to(browser, x: float, y: float) -> None:
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(browser)
    actions.pointer_action.move_to_location(int(x), int(y))
    actions.perform()
