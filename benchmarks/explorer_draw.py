"""Explorer responsiveness: time to load and to redraw a map of N points in headless Chromium.

Needs Debian's chromium and chromium-driver (`make browser`).

    python -m benchmarks.explorer_draw [--points 100000] [--thumbnails 5000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import header
from medviz.maps.explorer import write_explorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--thumbnails", type=int, default=5000)
    args = parser.parse_args()
    header(f"explorer with {args.points:,} points, {args.thumbnails:,} thumbnails, headless Chromium")

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 8, args.points)
    coords = rng.normal(size=(args.points, 2)) * 3 + rng.normal(size=(8, 2))[labels] * 20
    images = rng.integers(0, 256, (args.points, 28, 28, 3), dtype=np.uint8)
    path = Path(tempfile.mkdtemp()) / "explorer.html"
    write_explorer(path, coords, labels, [f"class{k}" for k in range(8)], images, max_thumbnails=args.thumbnails)
    print(f"file size: {path.stat().st_size / 2**20:.1f} MiB")
    load_s, draws = chromium_timings(path)
    print(f"load until ready: {load_s:.2f} s")
    print(f"redraw after a zoom step: median {np.median(draws):.1f} ms, max {max(draws):.1f} ms (10 steps)")


def chromium_timings(path: Path, steps: int = 10) -> tuple[float, list[float]]:
    """(seconds until the explorer at ``path`` is ready in headless Chromium, redraw ms of ``steps`` zoom steps)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium")
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        start = time.perf_counter()
        browser.get(path.as_uri())
        while not browser.execute_script("return Boolean(window.medviz && window.medviz.ready)"):
            time.sleep(0.02)
        load_s = time.perf_counter() - start
        draws = browser.execute_script(
            f"const out = []; for (let k = 0; k < {steps}; k++) {{"
            " const zoom = new WheelEvent('wheel', {deltaY: -50, clientX: 600, clientY: 450});"
            " document.getElementById('map').dispatchEvent(zoom);"
            " out.push(window.medviz.lastDrawMs); } return out;"
        )
    finally:
        browser.quit()
    return load_s, draws


if __name__ == "__main__":
    main()
