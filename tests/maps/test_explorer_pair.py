"""Two maps side by side (medviz explore --run A --run B): points matched by identity, linked in the browser."""

from __future__ import annotations

import base64
import json
import re
import time

import numpy as np
import pytest

from medviz.cli import main as medviz_main
from medviz.errors import DataError
from medviz.maps.explorer import explorer_html
from medviz.maps.explorer_pair import match_points, pair_page
from medviz.training.pipeline import train
from tests.helpers.config import TINY, compose_config
from tests.helpers.explorer_pages import tiny_map


def test_points_are_matched_by_identity_not_position():
    first_to_second, second_to_first = match_points(["a.png", "b.png", "c.png"], ["c.png", "x.png", "a.png"])
    assert first_to_second.tolist() == [2, -1, 0]
    assert second_to_first.tolist() == [2, -1, 0]


def test_duplicates_and_runs_of_other_images_are_refused():
    with pytest.raises(DataError, match="names the image a.png twice"):
        match_points(["a.png", "a.png"], ["a.png"])
    with pytest.raises(DataError, match="share no image"):
        match_points(["a.png"], ["b.png"])


def _payload(html: str) -> dict:
    return json.loads(re.search(r"const PAIR = (.*);\n", html).group(1))


def _mapping(b64: str) -> list[int]:
    return np.frombuffer(base64.b64decode(b64), np.int32).tolist()


def test_the_command_writes_both_maps_of_two_runs_into_one_page(tmp_path):
    overrides = [*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]", "eval.snapshot_every=0"]
    for name, seed in (("none", 0), ("other", 1)):
        train(compose_config([*overrides, f"seed={seed}"], run_dir=tmp_path / name))
    medviz_main(["explore", "--run", str(tmp_path / "none"), "--run", str(tmp_path / "other")])
    page = (tmp_path / "none" / "explorer-vs-other.html").read_text()
    data = _payload(page)
    assert data["titles"] == ["none", "other"] and len(data["pages"]) == 2
    assert all("const DATA = " in inner for inner in data["pages"])
    assert _mapping(data["firstToSecond"]) == list(range(96)) and "96 images in both maps" in data["note"]
    with pytest.raises(SystemExit):
        medviz_main(["explore", "--run", str(tmp_path / "none"), "--run", str(tmp_path / "other"), "--run", "x"])


@pytest.mark.browser
def test_hovering_and_selecting_in_one_map_lights_up_the_same_images_in_the_other(browser, tmp_path):
    coords, labels, classes, images = tiny_map(60)
    names = [f"cell{i:02d}.png" for i in range(60)]
    order = np.random.default_rng(3).permutation(60)  # the second run lists the same images in another order
    pages = [
        explorer_html(coords, labels, classes, images, names),
        explorer_html(coords[order][:, ::-1], labels[order], classes, images[order], [names[i] for i in order]),
    ]
    first_to_second, second_to_first = match_points(names, [names[i] for i in order])
    path = tmp_path / "pair.html"
    path.write_text(pair_page(pages, ["none", "batch"], first_to_second, second_to_first))
    browser.get(path.as_uri())
    frames = "window.medvizPair.frames[{k}].contentWindow.medviz"
    deadline = time.monotonic() + 30
    while not browser.execute_script(f"return Boolean({frames.format(k=0)} && {frames.format(k=1)})"):
        assert time.monotonic() < deadline, "the pair page did not load both maps"
        time.sleep(0.05)

    def wait_for(script: str, expected) -> None:
        deadline = time.monotonic() + 10
        while browser.execute_script(f"return {script}") != expected:
            assert time.monotonic() < deadline, f"{script} never became {expected}"
            time.sleep(0.05)

    browser.execute_script(f"{frames.format(k=0)}.hover(7)")
    wait_for(f"{frames.format(k=1)}.linkedHover", int(first_to_second[7]))
    browser.execute_script(f"{frames.format(k=1)}.select([0, 1, 2])")
    expected = sorted(int(second_to_first[j]) for j in (0, 1, 2))
    wait_for(f"Array.from({frames.format(k=0)}.selection).sort((a, b) => a - b)", expected)
    browser.execute_script(f"{frames.format(k=0)}.hover(-1)")
    wait_for(f"{frames.format(k=1)}.linkedHover", -1)
