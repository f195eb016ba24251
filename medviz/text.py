"""User strings shown as text: class, channel, file and folder names and metadata values reach
HTML, Markdown, CSV and matplotlib only through these functions, so none of them is read as markup,
a formula or code wherever medviz writes it."""

from __future__ import annotations

import json

# Characters that mean something inside a Markdown table cell (GitHub's math `$` included):
# backslash-escaped, so they show as written. `#`, `-`, `+` only mean something at a line's start.
_MARKDOWN_PUNCTUATION = "\\`*_[]|~$"
# A cell that begins with one of these is read as a formula by spreadsheets (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def markdown_cell(value: object) -> str:
    """``value`` as literal text in a Markdown table cell: no markup, no HTML, no broken columns.

    HTML's ``& < >`` become entities, Markdown punctuation (``|`` included) is backslash-escaped and
    line breaks become spaces, so a class named ``a|b`` or ``<img ...>`` is one cell showing just that.
    """
    text = str(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join(f"\\{c}" if c in _MARKDOWN_PUNCTUATION else c for c in text)


def plot_text(value: object) -> str:
    """``value`` as matplotlib draws it literally: ``$`` is escaped, so no name is read as mathtext
    (a class ``a$\\frac$`` would otherwise fail to draw and stop whatever was drawing it)."""
    return str(value).replace("$", r"\$")


def spreadsheet_cell(value: object) -> object:
    """A CSV cell that no spreadsheet runs: text beginning with ``= + - @`` (or a tab or carriage
    return) gets a leading ``'``; numbers stay numbers. Quoting is the CSV writer's job (RFC 4180)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    try:
        float(text)
        return text  # a number written as text ("-0.25") stays a number
    except ValueError:
        pass
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def json_for_script(data: object) -> str:
    """``data`` as JSON that is safe inside an HTML ``<script>`` element: every ``<``, ``>`` and ``&``
    (and the line separators JavaScript does not allow in strings) is a ``\\u`` escape, so no string in
    it can close the element, open a comment or start markup."""
    text = json.dumps(data)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def shown_list(values: list, limit: int = 10) -> str:
    """The first ``limit`` of ``values`` for a message, quoted as text (``'a', 'b' and 3 more``)."""
    shown = ", ".join(repr(str(v)) for v in values[:limit])
    more = len(values) - limit
    return f"{shown} and {more} more" if more > 0 else shown
