"""``medviz <args>`` run in the test's own process: the command's code, exit code and output."""

from __future__ import annotations

import contextlib
import io
import subprocess

from medviz import cli


def medviz(*args: str) -> subprocess.CompletedProcess:
    """``medviz <args>`` through ``medviz.cli.main`` in this process: the command's code, without the
    seconds of starting Python and importing PyTorch again; its exit code and output."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            cli.main(list(args))
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
    return subprocess.CompletedProcess(["medviz", *args], code, stdout.getvalue(), stderr.getvalue())
