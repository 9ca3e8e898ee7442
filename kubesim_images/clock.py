"""Time for the whole package: the event loop's clock, real or virtual, in integer nanoseconds.

Logic reads time only through `now_ns()` and waits only with `sleep_ns`/`call_at_ns` (or asyncio's
own sleeps and timeouts), so one code path serves both the daemon (a normal loop, real time) and
scenarios (`VirtualTimeLoop`, which jumps straight to the next timer whenever nothing is runnable:
hours of back-off cost microseconds, and a run is deterministic). `WallClock` is the single place
that maps loop time to calendar time for timestamps shown to people.

Virtual time is an integer number of nanoseconds, as Go's `time.Duration`, so the kubelet's
comparisons (`now - lastUpdate < backoff`) are decided exactly, never by float rounding. The tie
rule: timers due at the same instant run in the order they were scheduled (asyncio's timer heap
alone leaves that order to the heap's layout; every virtual timer carries a sequence number).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import gc
import heapq
import selectors
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from contextvars import Context
from typing import Any, TypeVar, TypeVarTuple, Unpack

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

NS_PER_SECOND = 1_000_000_000

# asyncio never asks its selector to wait longer than this per iteration (BaseEventLoop's
# MAXIMUM_SELECT_TIMEOUT); longer virtual jumps take several iterations.
_MAX_SELECT = 24 * 3600.0
# Room for the sequence number in a timer's single integer sort key (2**48 timers per run).
_SEQ_BITS = 48


def to_ns(seconds: float) -> int:
    """Seconds as whole nanoseconds, rounded to the nearest: recovers the exact value of any
    duration written with nanosecond precision (parsed durations are within 1e-15 relative)."""
    return round(seconds * NS_PER_SECOND)


def to_seconds(ns: int) -> float:
    return ns / NS_PER_SECOND


def go_seconds(ns: int) -> float:
    """Go's `Duration.Seconds()`: whole seconds plus the fraction, as x/time/rate computes."""
    sec, nsec = divmod(ns, NS_PER_SECOND)
    return float(sec) + nsec / 1e9


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
        if not ready and timeout is None:
            # Nothing scheduled and nothing runnable: only another thread can wake us.
            return self._real.select(None)
        if not ready and timeout is not None and timeout != 0:
            self._loop.advance_to_next_timer(timeout)
        # asyncio runs the timers due "by now plus the clock's resolution" right after this
        # call; on a virtual loop the loop itself decides, in integer nanoseconds.
        self._loop.release_due_timers()
        return ready

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Any:
        return self._real.get_map()


class _VirtualTimer(asyncio.TimerHandle):
    """A timer ordered by (due nanosecond, scheduling order): the tie rule lives here.

    Every timer of a virtual loop is one of these (`call_at` and `call_later` go through
    `call_at_ns`), so comparisons need no type check: the loop's timer heap compares them some
    twenty times per timer, millions of times in a large run.
    """

    __slots__ = ("sort_key", "when_ns")

    def __init__(
        self,
        when_ns: int,
        seq: int,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: VirtualTimeLoop,
        context: Context | None,
    ) -> None:
        if loop.get_debug():
            # asyncio's own constructor, for the creation traceback debug mode records.
            super().__init__(when_ns / NS_PER_SECOND, callback, args, loop, context)
        else:
            # TimerHandle's fields, set here: one constructor call less per timer.
            self._context = contextvars.copy_context() if context is None else context
            self._loop = loop
            self._callback = callback
            self._args = args
            self._cancelled = False
            self._repr = None
            self._source_traceback = None
            # asyncio's own bookkeeping compares `_when` (float seconds) with `loop.time()`,
            # which is derived from the same integer, so "due" agrees with the integer order.
            self._when = when_ns / NS_PER_SECOND
        self._scheduled = True  # pushed onto the loop's heap by its only creator, call_at_ns
        self.when_ns = when_ns
        self.sort_key = (when_ns << _SEQ_BITS) + seq

    def __hash__(self) -> int:
        return hash(self.sort_key)

    def __lt__(self, other: _VirtualTimer) -> bool:  # type: ignore[override]
        return self.sort_key < other.sort_key

    def __le__(self, other: _VirtualTimer) -> bool:  # type: ignore[override]
        return self.sort_key <= other.sort_key

    def __gt__(self, other: _VirtualTimer) -> bool:  # type: ignore[override]
        return self.sort_key > other.sort_key

    def __ge__(self, other: _VirtualTimer) -> bool:  # type: ignore[override]
        return self.sort_key >= other.sort_key

    def __eq__(self, other: object) -> bool:
        return self is other


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is virtual, in integer nanoseconds, and starts at 0."""

    def __init__(self) -> None:
        self.now_ns = 0
        self._timer_seq = 0
        super().__init__(_VirtualSelector(self))
        # asyncio's own "due" test (`when < now + resolution`) then never fires a timer: due
        # timers are released by `release_due_timers`, comparing integer nanoseconds.
        self._clock_resolution = 0.0

    def time(self) -> float:
        return self.now_ns / NS_PER_SECOND

    def call_at_ns(
        self,
        when_ns: int,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        """Run `callback(*args)` at virtual nanosecond `when_ns`, after every timer scheduled
        earlier for the same nanosecond."""
        self._check_closed()  # type: ignore[attr-defined]
        self._timer_seq += 1
        timer = _VirtualTimer(when_ns, self._timer_seq, callback, args, self, context)
        heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
        return timer

    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_at_ns(to_ns(when), callback, *args, context=context)

    def call_later(
        self,
        delay: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        # From the integer now, so `sleep(0.1)` ten times lands on exactly one second.
        return self.call_at_ns(self.now_ns + to_ns(delay), callback, *args, context=context)

    def release_due_timers(self) -> None:
        """Queue every timer due by now (`when_ns <= now_ns`), in (when, scheduling) order."""
        scheduled: list[_VirtualTimer] = self._scheduled  # type: ignore[attr-defined]
        ready: deque[asyncio.Handle] = self._ready  # type: ignore[attr-defined]
        now = self.now_ns
        while scheduled and scheduled[0].when_ns <= now:
            timer = heapq.heappop(scheduled)
            timer._scheduled = False  # noqa: SLF001 - as asyncio
            ready.append(timer)

    def advance_to_next_timer(self, timeout: float) -> None:
        # Land exactly on the next timer's nanosecond rather than `now + (when - now)`.
        scheduled: list[asyncio.TimerHandle] = getattr(self, "_scheduled", [])
        if scheduled and timeout < _MAX_SELECT:
            head = scheduled[0]
            when = head.when_ns if isinstance(head, _VirtualTimer) else to_ns(head.when())
            self.now_ns = max(self.now_ns, when)
        else:
            self.now_ns += to_ns(timeout)


def now_ns(loop: asyncio.AbstractEventLoop | None = None) -> int:
    """The loop's time in nanoseconds: exact on a virtual loop, the monotonic clock otherwise."""
    if loop is None:
        loop = asyncio.get_running_loop()
    if type(loop) is VirtualTimeLoop:  # the hot path of every scenario
        return loop.now_ns
    if isinstance(loop, VirtualTimeLoop):
        return loop.now_ns
    return to_ns(loop.time())


def ns_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], int]:
    """A zero-argument reader of `loop`'s time in nanoseconds, for hot paths: asking asyncio
    for the running loop on every read costs more than the read itself."""
    if isinstance(loop, VirtualTimeLoop):
        virtual = loop
        return lambda: virtual.now_ns
    return lambda: to_ns(loop.time())


class LoopClock:
    """`now()` in nanoseconds on the loop it is first read on: for objects made before their
    loop runs (a node, a registry), bound at first use."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now: Callable[[], int] = self._bind

    def _bind(self) -> int:
        self.now = ns_clock(asyncio.get_running_loop())
        return self.now()


def call_at_ns(
    loop: asyncio.AbstractEventLoop,
    when_ns: int,
    callback: Callable[[Unpack[_Ts]], object],
    *args: *_Ts,
) -> asyncio.TimerHandle:
    """A timer at loop nanosecond `when_ns` on any loop (exact, and FIFO on ties, when virtual)."""
    if isinstance(loop, VirtualTimeLoop):
        return loop.call_at_ns(when_ns, callback, *args)
    return loop.call_at(to_seconds(when_ns), callback, *args)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def sleep_ns(ns: int) -> None:
    """`asyncio.sleep` for a whole number of nanoseconds."""
    loop = asyncio.get_running_loop()
    if ns <= 0:
        await asyncio.sleep(0)
        return
    if not isinstance(loop, VirtualTimeLoop):
        await asyncio.sleep(ns / NS_PER_SECOND)
        return
    future: asyncio.Future[None] = loop.create_future()
    timer = loop.call_at_ns(loop.now_ns + ns, _wake, future)
    try:
        await future
    finally:
        timer.cancel()


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
    thresholds the cyclic collector alone costs about a quarter of a large run. Freeze what
    exists before the run (the scenario, the catalogue: never garbage, never scanned again) and
    collect far less often while it runs, then restore the thresholds.

    Restoring them as they were would start a full collection at the next allocation (the run
    left the oldest generation's counter far past its threshold), a scan of every object the
    run made: a second or more after a large run, most of it for results that are not garbage.
    So the run's survivors are frozen too while one collection resets the counters, which then
    costs nothing, and only then is everything handed back to the collector."""
    saved = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(200_000, 50, 1000)
    try:
        yield
    finally:
        gc.freeze()
        gc.collect()
        gc.set_threshold(*saved)
        gc.unfreeze()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


class WallClock:
    """Maps loop time (integer nanoseconds) to calendar time; `epoch` is the calendar time, in
    seconds, of loop time 0."""

    def __init__(self, loop: asyncio.AbstractEventLoop, epoch: float | None = None) -> None:
        self._loop = loop
        # The one wall-clock read in the package: anchoring loop time to the calendar.
        self._offset = (time.time() - loop.time()) if epoch is None else epoch

    def now_ns(self) -> int:
        return now_ns(self._loop)

    def epoch(self, loop_ns: int) -> float:
        """Calendar seconds for a loop time (what persists across restarts)."""
        return self._offset + loop_ns / NS_PER_SECOND

    def loop_time(self, epoch: float) -> int:
        """The loop time of a calendar instant, e.g. one saved before a restart."""
        return to_ns(epoch - self._offset)

    def to_datetime(self, loop_ns: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.epoch(loop_ns), tz=dt.UTC)

    def rfc3339(self, loop_ns: int) -> str:
        stamp = self.to_datetime(loop_ns).replace(microsecond=0)
        return stamp.isoformat().replace("+00:00", "Z")
