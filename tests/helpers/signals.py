"""The signals whose handlers decide how a run stops: Ctrl-C, a scheduler's SIGTERM, SLURM's requeue."""

from __future__ import annotations

import signal

WATCHED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
