"""Errors a user can act on: what is wrong, which file, what to do."""

from __future__ import annotations

from medviz.errors import MedvizError


class DataError(MedvizError):
    """Bad or missing input data. The message names the file and the fix; no traceback needed."""
