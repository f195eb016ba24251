"""Fixtures of the map tools' tests: a headless Chromium for the explorer (tests marked `browser`)."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, (
        "the browser tests need Debian's chromium and chromium-driver (make browser installs them; make test does too)"
    )
    options = Options()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1000,800",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(flag)
    options.binary_location = chromium
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()
