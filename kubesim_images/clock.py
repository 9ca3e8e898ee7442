"""Time for the whole package: the event loop's clock, real or virtual.

Logic reads time only through `loop.time()` and waits only with `asyncio.sleep`/timeouts, so one
code path serves both the daemon (a normal loop, real time) and scenarios (`VirtualTimeLoop`,
which jumps straight to the next timer whenever nothing is runnable: hours of back-off cost
microseconds, and a run is deterministic). `WallClock` is the single place that maps loop time to
calendar time for timestamps shown to people.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import selectors
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

_T = TypeVar("_T")

# asyncio never asks its selector to wait longer than this per iteration (BaseEventLoop's
# MAXIMUM_SELECT_TIMEOUT); longer virtual jumps take several iterations.
_MAX_SELECT = 24 * 3600.0


class _VirtualSelector(selectors.BaseSelector):
    """Wraps a real selector; instead of blocking until the next timer, advances virtual time."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # Nothing scheduled and nothing runnable: only another thread can wake us.
            return self._real.select(None)
        self._loop.advance_to_next_timer(timeout)
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Any:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose `time()` is virtual and starts at 0."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def advance_to_next_timer(self, timeout: float) -> None:
        # Land exactly on the next timer's deadline rather than `now + (when - now)`, so
        # simulated timestamps are the exact sums a user computes by hand.
        scheduled: list[asyncio.TimerHandle] = getattr(self, "_scheduled", [])
        if scheduled and timeout < _MAX_SELECT:
            self._virtual_now = max(self._virtual_now, scheduled[0].when())
        else:
            self._virtual_now += timeout


def run_virtual(main: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        with _fewer_collections():
            return loop.run_until_complete(main)
    finally:
        _cancel_leftovers(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """A simulation allocates millions of short-lived objects and few cycles; with the default
    thresholds the cyclic collector alone costs about a quarter of a large run. Collect far less
    often while it runs, then restore the thresholds and collect once."""
    saved = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


class WallClock:
    """Maps loop time to calendar time; `epoch` is the calendar time of loop time 0."""

    def __init__(self, loop: asyncio.AbstractEventLoop, epoch: float | None = None) -> None:
        self._loop = loop
        # The one wall-clock read in the package: anchoring loop time to the calendar.
        self._offset = (time.time() - loop.time()) if epoch is None else epoch

    def now(self) -> float:
        return self._loop.time()

    def epoch(self, loop_time: float) -> float:
        """Calendar seconds for a loop time (what persists across restarts)."""
        return self._offset + loop_time

    def loop_time(self, epoch: float) -> float:
        """The loop time of a calendar instant, e.g. one saved before a restart."""
        return epoch - self._offset

    def to_datetime(self, loop_time: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._offset + loop_time, tz=dt.UTC)

    def rfc3339(self, loop_time: float) -> str:
        stamp = self.to_datetime(loop_time).replace(microsecond=0)
        return stamp.isoformat().replace("+00:00", "Z")
