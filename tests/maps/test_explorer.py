"""The HTML explorer: self-contained, drawn on a canvas; checked in headless Chromium (marker `browser`)."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medviz.maps.explorer import write_explorer
from tests.helpers.explorer_pages import move_to, open_map, tiny_map


def payload(path) -> dict:
    text = path.read_text()
    return json.loads(re.search(r"const DATA = (.*);\n", text).group(1))


def test_the_file_is_self_contained_and_carries_every_point(tmp_path):
    coords, labels, names, images = tiny_map()
    path = write_explorer(
        tmp_path / "x.html", coords, labels, names, images, names=[f"img{i}</script>.png" for i in range(300)]
    )
    text = path.read_text()
    assert "http://" not in text and "https://" not in text and "<script src" not in text
    assert text.count("</script>") == 1  # a file name cannot close the script early
    data = payload(path)
    xs = np.frombuffer(base64.b64decode(data["x"]), np.float32)
    np.testing.assert_allclose(xs, coords[:, 0], rtol=1e-6)
    assert len(data["names"]) == 300 and data["classNames"] == names


def test_thumbnails_are_capped_by_a_seeded_sample(tmp_path):
    coords, labels, names, images = tiny_map()
    data = payload(write_explorer(tmp_path / "x.html", coords, labels, names, images, max_thumbnails=150))
    thumbs = np.frombuffer(base64.b64decode(data["thumbs"]), np.int32)
    assert (thumbs >= 0).sum() == 150 and sorted(thumbs[thumbs >= 0]) == list(range(150))
    atlas = Image.open(io.BytesIO(base64.b64decode(data["atlas"].split(",")[1])))
    assert atlas.size == (100 * 28, 2 * 28)


def test_only_the_thumbnails_rows_of_a_large_multichannel_set_are_converted(tmp_path):
    from medviz.data.display import ConvertedRows, display_rgb, unit_bytes
    from medviz.data.intensity import Intensity
    from medviz.maps.explorer import ChannelView

    rng = np.random.default_rng(0)
    n = 2000
    stored = rng.integers(0, 4096, (n, 16, 16, 2), dtype=np.uint16)
    scale = Intensity("fixed", (0.0, 0.0), (4095.0, 4095.0))
    converted = []

    def counted(convert):
        def run(rows):
            converted.append(len(rows))
            return convert(rows)

        return run

    shown = ConvertedRows(stored, counted(lambda rows: display_rgb(rows, scale)), 3)
    channels = ChannelView(
        ConvertedRows(stored, counted(lambda rows: unit_bytes(rows, scale)), 2), ["a", "b"], ["#00ff00", "#ff00ff"]
    )
    assert shown.shape == (n, 16, 16, 3) and np.array_equal(shown[[5, 7]], display_rgb(stored[[5, 7]], scale))
    assert np.array_equal(shown[5], display_rgb(stored[5:6], scale)[0])
    converted.clear()
    coords, labels = rng.normal(size=(n, 2)), rng.integers(0, 2, n)
    write_explorer(tmp_path / "x.html", coords, labels, ["a", "b"], shown, max_thumbnails=100, channels=channels)
    assert converted == [100, 100]  # one pass over the sampled rows for each view, not over all 2,000


@pytest.mark.browser
def test_explorer_draws_every_point_and_shows_a_thumbnail_on_hover(browser, tmp_path):
    coords, labels, names, images = tiny_map()
    path = write_explorer(tmp_path / "x.html", coords, labels, names, images)
    open_map(browser, path)
    assert browser.execute_script("return window.medviz.count") == len(coords)
    shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB"))
    coloured = (shot.max(axis=2).astype(int) - shot.min(axis=2)) > 60  # saturated class colours, not white/grey
    assert coloured.sum() > 2000

    x, y = browser.execute_script("return window.medviz.screenPosition(7)")
    move_to(browser, x, y)
    assert browser.execute_script("return window.medviz.hovered") == 7
    tooltip = browser.find_element("id", "tooltip")
    assert tooltip.is_displayed() and "#7 · " in tooltip.text
    thumbnail = browser.execute_script(
        "const c = document.querySelector('#tooltip canvas');"
        "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data.slice(0, 400));"
    )
    assert len(set(thumbnail)) > 10  # the image's pixels, not an empty canvas


HOSTILE_CLASS = "<img src=x onerror=document.title='pwned'>"
HOSTILE_CHANNEL = "<b onmouseover=alert(1)>DNA</b>"


def hostile_explorer(tmp_path):
    """An explorer whose class, channel and file names are markup, a comment opener and formulas."""
    from medviz.maps.explorer import ChannelView

    coords, labels, _, _ = tiny_map()
    classes = [HOSTILE_CLASS, '=HYPERLINK("http://x","a")', 'say "hi", then |go|']
    names = [f"q<!--<script>{i}.png" if i % 2 else f'@SUM(1,2) "{i}".png' for i in range(len(coords))]
    channel_images = np.zeros((len(coords), 28, 28, 2), np.uint8)
    view = ChannelView(channel_images, [HOSTILE_CHANNEL, "__DATA__ </script>"], ["#00ff00", "#ff00ff"])
    path = write_explorer(
        tmp_path / "x.html",
        coords,
        labels,
        classes,
        np.zeros((len(coords), 28, 28, 3), np.uint8),
        names=names,
        title="__DATA__ <title>",
        channels=view,
    )
    return path, coords, labels, classes, names


def test_no_user_string_becomes_markup_in_the_file(tmp_path):
    path, _, _, classes, names = hostile_explorer(tmp_path)
    text = path.read_text()
    assert text.count("<script") == TEMPLATE_SCRIPTS and text.count("</script>") == TEMPLATE_SCRIPTS
    assert "<!--" not in text and "<img" not in text and "<b " not in text
    assert "<title>__DATA__ &lt;title&gt;</title>" in text  # the title is the title, not the data
    data = payload(path)
    assert data["classNames"] == classes and data["names"] == names
    assert data["channelNames"] == [HOSTILE_CHANNEL, "__DATA__ </script>"]


TEMPLATE_SCRIPTS = (Path(__file__).parents[2] / "medviz" / "maps" / "explorer.html").read_text().count("<script")


@pytest.mark.browser
def test_hostile_names_are_shown_as_text_and_exported_as_inert_csv(browser, tmp_path):
    path, coords, labels, classes, names = hostile_explorer(tmp_path)
    open_map(browser, path)  # a comment opener in a file name no longer stops the page
    assert browser.title == "__DATA__ <title>"  # no onerror handler ran
    legend = [e.text for e in browser.find_elements("css selector", "#legend div")]
    assert [row.rsplit(" (", 1)[0] for row in legend] == classes
    assert browser.find_elements("css selector", "#legend img, #channels b") == []
    channels = [e.text for e in browser.find_elements("css selector", "#channels label")][:2]
    assert channels == [HOSTILE_CHANNEL, "__DATA__ </script>"]
    browser.execute_script("window.medviz.select([0, 1, 2, 3])")
    import csv as csv_module

    exported = browser.execute_script("return window.medviz.selectionCsv()")
    rows = list(csv_module.reader(io.StringIO(exported)))
    assert rows[0] == ["index", "label", "class", "name"] and len(rows) == 5
    for row, i in zip(rows[1:], range(4), strict=True):
        cls, name = classes[labels[i]], names[i]
        assert row[:2] == [str(i), str(labels[i])]  # numbers stay numbers
        assert row[2] == ("'" + cls if cls[0] in "=+-@" else cls)  # quotes and commas survive, formulas do not
        assert row[3] == ("'" + name if name[0] in "=+-@" else name)


@pytest.mark.browser
def test_box_selection_exports_the_points_inside(browser, tmp_path):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.keys import Keys

    coords, labels, names, images = tiny_map()
    path = write_explorer(tmp_path / "x.html", coords, labels, names, images)
    open_map(browser, path)
    (x0, y0), (x1, y1) = browser.execute_script(
        "return [window.medviz.screenPosition(0), window.medviz.screenPosition(1)]"
    )
    left, right, top, bottom = min(x0, x1) - 3, max(x0, x1) + 3, min(y0, y1) - 3, max(y0, y1) + 3
    actions = ActionBuilder(browser)
    actions.key_action.key_down(Keys.SHIFT)
    actions.pointer_action.move_to_location(int(left), int(top)).pointer_down()
    actions.pointer_action.move_to_location(int(right), int(bottom)).pointer_up()
    actions.key_action.key_up(Keys.SHIFT)
    actions.perform()
    selected = browser.execute_script("return window.medviz.selection")
    screen = browser.execute_script(
        f"return Array.from({{length: {len(coords)}}}, (_, i) => window.medviz.screenPosition(i))"
    )
    inside = [i for i, (x, y) in enumerate(screen) if int(left) <= x <= int(right) and int(top) <= y <= int(bottom)]
    assert {0, 1} <= set(selected) and abs(len(selected) - len(inside)) <= 2
    csv = browser.execute_script("return window.medviz.selectionCsv()").splitlines()
    assert csv[0] == "index,label,class,name" and len(csv) == len(selected) + 1


@pytest.mark.browser
def test_channels_switch_off_and_contrast_raises_the_composite(browser, tmp_path):
    from medviz.maps.explorer import ChannelView

    coords, labels, names, _ = tiny_map()
    channel_images = np.zeros((len(coords), 28, 28, 2), np.uint8)
    channel_images[..., 0] = 100  # channel 0 (green) dim everywhere, channel 1 (magenta) bright
    channel_images[..., 1] = 200
    composite = np.zeros((len(coords), 28, 28, 3), np.uint8)
    view = ChannelView(channel_images, ["DNA", "actin"], ["#00ff00", "#ff00ff"])
    path = write_explorer(tmp_path / "x.html", coords, labels, names, composite, channels=view)
    open_map(browser, path)
    assert [e.text for e in browser.find_elements("css selector", "#channels label")][:2] == ["DNA", "actin"]

    def centre_pixel() -> list[int]:
        x, y = browser.execute_script("return window.medviz.screenPosition(7)")
        move_to(browser, x, y)
        return browser.execute_script(
            "const c = document.querySelector('#tooltip canvas');"
            "return Array.from(c.getContext('2d').getImageData(28, 28, 1, 1).data.slice(0, 3));"
        )

    assert centre_pixel() == [200, 100, 200]  # magenta 200 + green 100, added
    browser.find_element("css selector", "input[data-channel='1']").click()
    assert centre_pixel() == [0, 100, 0]  # actin off: only DNA's green
    browser.execute_script(
        "const s = document.getElementById('contrast'); s.value = 2; s.dispatchEvent(new Event('input'));"
    )
    assert centre_pixel() == [0, 200, 0]  # contrast x2
