"""Building hundreds of thousands of small objects without the garbage collector's passes.

Python's cyclic garbage collector runs after every few hundred new container objects, and each
full pass walks every live object. Listing a folder of 200,000 files creates a few tuples per file,
so the passes cost more than the listing itself (measured: 0.48 s against 0.08 s to build 200,000
store items). Those tuples hold only strings and numbers, never cycles, so pausing the collector
while they are built frees nothing late.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside the block (it is switched back on after, if it was on)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
