"""Start-up of a command: its imports run without the cyclic garbage collector.

Importing the CLI, and aiohttp for `pull`, creates a few hundred thousand objects that live as
long as the process (modules, classes, functions, constants). The collector, which runs every
few hundred allocations, walks them again and again while they are being created: tens of
milliseconds of a pull's start spent finding no garbage. So imports run with it off, and what
they made is then moved out of its sight for good (`gc.freeze`), which also spares every later
collection of a long run (the daemon, a scenario) the walk over them.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def imports_without_gc() -> Iterator[None]:
    """Collector off for the block; afterwards what exists is frozen and it is on again (if
    it was on: a caller that turned it off keeps it off)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
