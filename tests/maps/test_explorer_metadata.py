"""The explorer with metadata: colour by any column, search, lasso, enrichment, layout (headless Chromium)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from medviz.maps.explorer import write_explorer
from tests.helpers.explorer_pages import move_to, open_map, tiny_map

HOSTILE_NOTE = "<img src=x onerror=document.title='pwned'>"


def metadata_explorer(tmp_path):
    coords, labels, classes, images, metadata = metadata_map()
    names = list(metadata["path"])
    path = write_explorer(tmp_path / "x.html", coords, labels, classes, images, names, metadata=metadata)
    return path, coords, metadata


def metadata_map(n: int = 300):
    """tiny_map with a metadata table: a plate (text), a dose (numbers, some missing) and hostile values."""

    coords, labels, classes, images = tiny_map(n)
    plates = np.where(coords[:, 0] > np.median(coords[:, 0]), "plate-B", "plate-A")
    dose = np.linspace(0, 10, n).astype(np.float32)
    dose[::50] = np.nan
    metadata = pd.DataFrame(
        {
            "path": [f"cells/{i:04d}.png" for i in range(n)],
            "Metadata_Plate": pd.Categorical(plates),
            "Metadata_Dose": dose,
            "note": pd.Categorical(
                ["<img src=x onerror=document.title='pwned'>" if i % 2 else "=1+1" for i in range(n)]
            ),
        }
    )
    return coords, labels, classes, images, metadata


@pytest.mark.browser
def test_colour_by_any_column_with_a_legend_a_ramp_and_hidden_categories(browser, tmp_path):
    path, coords, metadata = metadata_explorer(tmp_path)
    open_map(browser, path)
    assert browser.execute_script("return window.medviz.columns") == ["Metadata_Plate", "Metadata_Dose", "note"]
    legend = [e.text for e in browser.find_elements("css selector", "#legend div")]
    assert [row.rsplit(" (", 1)[0] for row in legend] == ["a", "b", "c"]  # the classes, there on load
    assert browser.execute_script("return window.medviz.colourBy('Metadata_Plate')")
    legend = [e.text for e in browser.find_elements("css selector", "#legend div")]
    assert legend == [
        f"plate-A ({(metadata.Metadata_Plate == 'plate-A').sum()})",
        f"plate-B ({(metadata.Metadata_Plate == 'plate-B').sum()})",
    ]
    browser.find_elements("css selector", "#legend div")[0].click()  # hide plate-A
    assert "off" in browser.find_elements("css selector", "#legend div")[0].get_attribute("class")
    a = int(np.flatnonzero(metadata.Metadata_Plate == "plate-A")[0])
    x, y = browser.execute_script(f"return window.medviz.screenPosition({a})")
    move_to(browser, x, y)
    assert browser.execute_script("return window.medviz.hovered") != a  # hidden points are not hovered
    browser.execute_script("window.medviz.colourBy('Metadata_Dose')")
    assert browser.find_element("id", "rampbox").is_displayed()
    assert browser.find_element("id", "ramplabel").text == "Metadata_Dose: 0.03344 to 10"  # the first point has no dose
    browser.execute_script("window.medviz.colourBy('note')")
    assert browser.title != "pwned"
    notes = [e.text for e in browser.find_elements("css selector", "#legend div")]
    assert notes[0].startswith(HOSTILE_NOTE) and browser.find_elements("css selector", "#legend img") == []


@pytest.mark.browser
def test_search_lasso_enrichment_and_an_export_with_every_column(browser, tmp_path):
    import csv as csv_module

    path, coords, metadata = metadata_explorer(tmp_path)
    open_map(browser, path)
    assert browser.execute_script("return window.medviz.search('cells/000')") == 10  # paths 0000-0009
    assert browser.execute_script("return window.medviz.search('PLATE-b')") == int(
        (metadata.Metadata_Plate == "plate-B").sum()
    )
    assert browser.execute_script("return window.medviz.search('')") == len(coords)
    browser.execute_script("window.medviz.colourBy('Metadata_Plate')")
    # a lasso around the right half of the map: only plate-B lies there
    screen = np.array(
        browser.execute_script(
            f"return Array.from({{length: {len(coords)}}}, (_, i) => window.medviz.screenPosition(i))"
        )
    )
    right = screen[metadata.Metadata_Plate == "plate-B"]
    polygon = [
        [right[:, 0].min() - 2, right[:, 1].min() - 2],
        [right[:, 0].max() + 2, right[:, 1].min() - 2],
        [right[:, 0].max() + 2, right[:, 1].max() + 2],
        [right[:, 0].min() - 2, right[:, 1].max() + 2],
    ]
    count = browser.execute_script(f"return window.medviz.lassoSelect({json.dumps(polygon)})")
    selected = browser.execute_script("return window.medviz.selection")
    assert count == len(selected) and set(np.flatnonzero(metadata.Metadata_Plate == "plate-B")) <= set(selected)
    enrichment = browser.execute_script("return window.medviz.enrichment()")
    assert enrichment[0]["value"] == "plate-B" and enrichment[0]["selection"] > enrichment[0]["map"]
    assert browser.find_element("id", "selection").is_displayed()
    assert len(browser.find_elements("css selector", "#grid canvas")) == min(48, len(selected))
    rows = list(csv_module.reader(io.StringIO(browser.execute_script("return window.medviz.selectionCsv()"))))
    assert rows[0] == ["index", "label", "class", "name", "Metadata_Plate", "Metadata_Dose", "note"]
    first = int(rows[1][0])
    assert rows[1][3] == f"cells/{first:04d}.png" and rows[1][4] == metadata.Metadata_Plate[first]
    assert rows[1][6] in ("'=1+1", HOSTILE_NOTE)  # a formula is not run


@pytest.mark.browser
def test_the_panel_sits_beside_the_map_and_the_hover_card_stays_on_the_page(browser, tmp_path):
    path, coords, metadata = metadata_explorer(tmp_path)
    open_map(browser, path)
    canvas = browser.find_element("id", "map").rect
    panel = browser.find_element("id", "panel").rect
    assert canvas["x"] + canvas["width"] <= panel["x"] + 1  # the panel covers no point of the map
    low = int(np.argmin(coords[:, 1]))  # the lowest point: its card would run off the bottom
    x, y = browser.execute_script(f"return window.medviz.screenPosition({low})")
    move_to(browser, x, y)
    card = browser.find_element("id", "tooltip").rect
    height = browser.execute_script("return window.innerHeight")
    assert browser.execute_script("return window.medviz.hovered") == low
    assert card["y"] >= 0 and card["y"] + card["height"] <= height
    assert "Metadata_Dose" in browser.find_element("id", "tooltip").text
    browser.find_element("id", "fold").click()
    assert browser.find_element("id", "map").rect["width"] > canvas["width"]  # folded away: the map takes the page
