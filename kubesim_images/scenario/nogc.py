"""The cyclic garbage collector paused while a scenario's large, acyclic structures are built.

Parsing stamps a million pods from a file and the report builds a million dicts for the JSON:
containers the collector would scan again and again as they accumulate (seconds at 100,000
nodes) while none of them is part of a cycle. Reference counting still frees them at once.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def no_cyclic_gc(*, freeze: bool = False) -> Iterator[None]:
    """The collector off for the block, then as it was. `freeze`: what the process holds by
    then is moved out of the collector's sight for good (`gc.freeze`), so the next collection
    does not scan everything the block made once more: for a process's owner only (the
    command line), whose results live until it exits; a virtual run freezes the same way."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()
