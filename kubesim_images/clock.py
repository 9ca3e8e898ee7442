"""Time for the whole package: the event loop's clock, real or virtual, in integer nanoseconds.

The kubelet's rules read time and set timers only through a `scheduler.Scheduler`: the daemon's
asyncio loop (real time), or a scenario's lean event core (virtual time). Asyncio code reads
time with `now_ns()` and waits with `sleep_ns`/`call_at_ns` (or asyncio's own sleeps and
timeouts); `VirtualTimeLoop` runs such code in virtual time, jumping straight to the next timer
whenever nothing is runnable (hours of back-off cost microseconds, and a run is deterministic):
the tests run the daemon's side of the rules on it, and hold the event core to its ties.
`WallClock` is the single place that maps loop time to calendar time for timestamps shown to
people.

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

# Cancelled timers left in the heap before it is rebuilt without them (as asyncio's own heap).
_COMPACT_MIN = 100
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
        # asyncio asks to wait (timeout None: its own timer heap is always empty here) only
        # when nothing is runnable: then virtual time jumps to the next timer.
        if not ready and timeout != 0 and not self._loop.advance_to_next_timer():
            # Nothing runnable and no timer: only another thread can wake us.
            return self._real.select(None)
        self._loop.release_due_timers()
        return ready

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Any:
        return self._real.get_map()


class _VirtualTimer(asyncio.TimerHandle):
    """A timer due at an integer nanosecond; `sort_key` orders it by (due, scheduling order)."""

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
        if loop._debug:  # type: ignore[attr-defined]  # noqa: SLF001 - get_debug(), inlined
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
            self._when = when_ns / NS_PER_SECOND  # what `when()` and repr show
        self._scheduled = True  # in the loop's heap from birth: call_at_ns is the only creator
        self.when_ns = when_ns
        self.sort_key = (when_ns << _SEQ_BITS) + seq


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is virtual, in integer nanoseconds, and starts at 0.

    Its timers live in a heap of its own, of `(sort_key, timer)` pairs: ordered by integer
    keys, compared in C, where asyncio's heap of handles would call a Python `__lt__` some
    twenty times per timer (millions of calls in a large run). asyncio's heap stays empty, so
    asyncio only ever asks to wait when nothing is runnable, which is when time jumps.
    """

    def __init__(self) -> None:
        self.now_ns = 0
        self._timer_seq = 0
        self._timers: list[tuple[int, _VirtualTimer]] = []
        self._cancelled_timers = 0  # cancelled but still in `_timers`
        super().__init__(_VirtualSelector(self))

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
        if self._closed:  # type: ignore[attr-defined]  # _check_closed(), inlined
            raise RuntimeError("Event loop is closed")
        seq = self._timer_seq = self._timer_seq + 1
        timer = _VirtualTimer(when_ns, seq, callback, args, self, context)
        heapq.heappush(self._timers, (timer.sort_key, timer))
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

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        # TimerHandle.cancel's notification: the entry stays in the heap until it is due, or
        # until cancelled entries are half of it (`_drop_cancelled`).
        if handle._scheduled:  # type: ignore[attr-defined]  # noqa: SLF001 - asyncio's flag
            self._cancelled_timers += 1

    def release_due_timers(self) -> None:
        """Queue every timer due by now (`when_ns <= now_ns`), in (when, scheduling) order;
        a cancelled one is dropped (asyncio would skip it in the queue)."""
        timers = self._timers
        ready: deque[asyncio.Handle] = self._ready  # type: ignore[attr-defined]
        limit = (self.now_ns + 1) << _SEQ_BITS
        while timers and timers[0][0] < limit:
            timer = heapq.heappop(timers)[1]
            timer._scheduled = False  # noqa: SLF001 - as asyncio
            if timer._cancelled:  # noqa: SLF001
                self._cancelled_timers -= 1
            else:
                ready.append(timer)

    def advance_to_next_timer(self) -> bool:
        """Move time to the next live timer's nanosecond (never back); False if there is none."""
        timers = self._timers
        if self._cancelled_timers > _COMPACT_MIN and 2 * self._cancelled_timers > len(timers):
            self._drop_cancelled()
        while timers and timers[0][1]._cancelled:  # noqa: SLF001
            heapq.heappop(timers)[1]._scheduled = False  # noqa: SLF001 - as asyncio
            self._cancelled_timers -= 1
        if not timers:
            return False
        self.now_ns = max(self.now_ns, timers[0][1].when_ns)
        return True

    def _drop_cancelled(self) -> None:
        live = []
        for entry in self._timers:
            if entry[1]._cancelled:  # noqa: SLF001
                entry[1]._scheduled = False  # noqa: SLF001 - as asyncio
            else:
                live.append(entry)
        heapq.heapify(live)
        self._timers[:] = live
        self._cancelled_timers = 0

    def close(self) -> None:
        super().close()
        self._timers.clear()
        self._cancelled_timers = 0


def now_ns(loop: asyncio.AbstractEventLoop | None = None) -> int:
    """The loop's time in nanoseconds: exact on a virtual loop, the monotonic clock otherwise."""
    if loop is None:
        loop = asyncio.get_running_loop()
    if type(loop) is VirtualTimeLoop:  # the hot path of every scenario
        return loop.now_ns
    if isinstance(loop, VirtualTimeLoop):
        return loop.now_ns
    return to_ns(loop.time())


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
        with fewer_collections():
            return loop.run_until_complete(main)
    finally:
        _cancel_leftovers(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """The cyclic collector is off while a simulation runs. A run makes millions of objects
    that live to its end (events, pod statuses) and that every collection would scan again,
    about a sixth of a large run, and very few cycles: those of failed pulls (an exception
    and its traceback) and cancelled pod workers, which the scenario driver clears as it goes
    (`collect_cycles`). What exists before the run (the scenario, the catalogue) is frozen:
    never garbage, never scanned.

    At the end the run's survivors are frozen too while one collection resets the counters
    (left far past their thresholds, they would start a full collection at the next
    allocation: seconds after a large run, for results that are not garbage), and only then
    is everything handed back to the collector."""
    enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.collect()
        gc.unfreeze()
        if enabled:
            gc.enable()


def collect_cycles() -> None:
    """Free the cycles made since the last call, during a `run_virtual` run (the collector is
    off): one pass over the objects made since then, which are not scanned again after."""
    gc.collect(1)


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
