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
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 8, args.points)
    coords = rng.normal(size=(args.points, 2)) * 3 + rng.normal(size=(8, 2))[labels] * 20
    images = rng.integers(0, 256, (args.points, 28, 28, 3), dtype=np.uint8)
    path = Path(tempfile.mkdtemp()) / "explorer.html"
    write_explorer(path, coords, labels, [f"class{k}" for k in range(8)], images, max_thumbnails=args.thumbnails)
    print(f"file size: {path.stat().st_size / 2**20:.1f} MiB")
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
        print(f"load until ready: {time.perf_counter() - start:.2f} s")
        draws = browser.execute_script(
            "const out = []; for (let k = 0; k < 10; k++) {"
            " const zoom = new WheelEvent('wheel', {deltaY: -50, clientX: 600, clientY: 450});"
            " document.getElementById('map').dispatchEvent(zoom);"
            " out.push(window.medviz.lastDrawMs); } return out;"
        )
        print(f"redraw after a zoom step: median {np.median(draws):.1f} ms, max {max(draws):.1f} ms (10 steps)")
    finally:
        browser.quit()


if __name__ == "__main__":
    main()
