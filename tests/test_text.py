"""User strings as text: Markdown cells, matplotlib labels, spreadsheet cells, JSON inside a script."""

from __future__ import annotations

import csv
import io
import json

import pytest

from medviz.text import json_for_script, markdown_cell, plot_text, spreadsheet_cell


def test_a_markdown_cell_keeps_its_column_and_shows_no_markup():
    cell = markdown_cell("a|b <img src=x> *bold* `code` $x$\nnext")
    assert "|" not in cell.replace("\\|", "")
    assert "<" not in cell and ">" not in cell and "\n" not in cell
    assert cell == "a\\|b &lt;img src=x&gt; \\*bold\\* \\`code\\` \\$x\\$ next"
    assert markdown_cell("rot90 0.5 aug=default") == "rot90 0.5 aug=default"  # plain text stays readable


def test_plot_text_escapes_every_dollar():
    assert plot_text("a$\\frac$") == "a\\$\\frac\\$"
    assert plot_text("plain") == "plain"


@pytest.mark.parametrize("text", ["=1+1", "+A1", "-cmd", "@SUM(A1)", "\tx", "\rx"])
def test_a_spreadsheet_never_reads_a_text_cell_as_a_formula(text):
    assert spreadsheet_cell(text) == "'" + text


def test_numbers_stay_numbers_and_quotes_survive_csv():
    assert spreadsheet_cell(-3) == -3 and spreadsheet_cell(2.5) == 2.5 and spreadsheet_cell("-0.25") == "-0.25"
    out = io.StringIO()
    csv.writer(out).writerow([spreadsheet_cell(v) for v in (-3, 'say "hi", ok', "=HYPERLINK()")])
    assert next(csv.reader(io.StringIO(out.getvalue()))) == ["-3", 'say "hi", ok', "'=HYPERLINK()"]


def test_json_for_a_script_element_has_no_markup_characters_and_reads_back():
    data = {"names": ["</script><script>alert(1)</script>", "q<!--x", "a&b", "\u2028"]}
    text = json_for_script(data)
    assert not set("<>&") & set(text) and "\u2028" not in text
    assert json.loads(text) == data
