"""Errors a user can act on: the message says what is wrong and what to do, so no traceback is shown."""

from __future__ import annotations


class MedvizError(RuntimeError):
    """Base of every error whose message alone is enough for the user (entry points print it and exit 1)."""


class ConfigError(MedvizError):
    """A setting or the environment it needs is wrong (e.g. W&B without a login and without offline mode)."""


class DataError(MedvizError):
    """Bad or missing input data. The message names the file and the fix; no traceback needed."""
