"""The one interface the kubelet's rules run on: now, a timer, and a callback soon.

The image manager, pull queue, simulated registry, pod workers and image GC never await: each
is a set of synchronous decision steps, chained by callbacks through a `Scheduler` (the sans-I/O
pattern of h11 and wsproto). Two schedulers run them:

- `LoopScheduler`, over an asyncio loop: the daemon and real-time scenarios, where the loop also
  serves HTTP and real registries, and where the few steps that must wait on I/O (a real
  registry's pull, a credential plugin) run as asyncio tasks that call back when done;
- `EventCore`, a lean discrete-event core for scenarios in virtual time: a heap of timers and a
  queue of callbacks, nothing else, so a simulated pull costs a few function calls rather than
  tasks, futures and handles.

Both keep one rule for what happens at the same instant (SPEC section 9): timers due at the same
nanosecond run in the order they were scheduled, and callbacks asked for "soon" run after those
already queued. `EventCore` runs its queue in the same turns as asyncio's loop (each turn: the
timers now due join the queue, then the callbacks queued at the start of the turn run), so a
scenario decides every tie exactly as the daemon's loop would.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, TypeVarTuple, Unpack

from kubesim_images.clock import call_at_ns, now_ns

_Ts = TypeVarTuple("_Ts")
_T = TypeVar("_T")

# Room for the sequence number in a timer's single integer sort key (2**48 timers per run).
_SEQ_BITS = 48
# Cancelled timers left in the heap before it is rebuilt without them.
_COMPACT_MIN = 100


class Timer(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    def now(self) -> int:
        """The time, in integer nanoseconds (loop time, or virtual time from 0)."""
        ...

    def call_at(self, when: int, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run `callback(*args)` at nanosecond `when`, after the timers scheduled earlier for
        the same nanosecond."""
        ...

    def call_soon(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> None:
        """Run `callback(*args)` in the next turn, after the callbacks already queued."""
        ...


class LoopScheduler:
    """A `Scheduler` over an asyncio loop (virtual or real). Without a loop, it uses the loop
    running when first asked: for objects made before their loop runs (a node, a registry)."""

    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def now(self) -> int:
        return now_ns(self.loop)

    def call_at(self, when: int, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        return call_at_ns(self.loop, when, callback, *args)

    def call_soon(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> None:
        self.loop.call_soon(callback, *args)


def settles(future: asyncio.Future[_T], error: type[Exception]) -> Callable[[_T | Exception], None]:
    """The callback a step ends with, settling `future` for an asyncio caller awaiting it: an
    `error` instance is raised from the future, anything else is its result (nothing once the
    future is done, e.g. cancelled)."""

    def settle(outcome: _T | Exception) -> None:
        if future.done():
            return
        if isinstance(outcome, error):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)  # type: ignore[arg-type]  # not an `error`: a _T

    return settle


class CoreTimer:
    """An `EventCore` timer: cancelled by dropping its callback; left in the heap until due."""

    __slots__ = ("args", "callback", "core")

    def __init__(
        self, core: EventCore, callback: Callable[..., object], args: tuple[Any, ...]
    ) -> None:
        self.core = core
        self.callback: Callable[..., object] | None = callback
        self.args = args

    def cancel(self) -> None:
        if self.callback is not None:
            self.callback = None
            self.core.cancelled += 1


class EventCore:
    """A discrete-event core in virtual integer nanoseconds from 0: a `Scheduler` whose time
    jumps to the next timer whenever nothing is queued. Callbacks that raise propagate out of
    `run` (a bug in a simulation must stop it, not be logged and skipped)."""

    __slots__ = ("_ending", "_ready", "_seq", "_timers", "cancelled", "now_ns")

    def __init__(self) -> None:
        self.now_ns = 0
        self._seq = 0
        self._timers: list[tuple[int, CoreTimer]] = []
        self._ready: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self._ending = False
        self.cancelled = 0  # cancelled timers still in the heap

    def now(self) -> int:
        return self.now_ns

    def call_at(
        self, when: int, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts
    ) -> CoreTimer:
        seq = self._seq = self._seq + 1
        timer = CoreTimer(self, callback, args)
        heapq.heappush(self._timers, ((when << _SEQ_BITS) + seq, timer))
        return timer

    def call_soon(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> None:
        self._ready.append((callback, args))

    def stop_after_instant(self) -> None:
        """End `run` once everything due at the current instant has run: the queued
        callbacks, the timers due now, and what they set off now; time goes no further."""
        self._ending = True

    def run(self) -> None:
        """Run turns until nothing is queued and no timer is left (or, after
        `stop_after_instant`, none is due now)."""
        ready = self._ready
        timers = self._timers
        heappop = heapq.heappop
        popleft = ready.popleft
        while True:
            if not ready:
                if not self._ending:
                    if not self._advance():
                        return
                elif not self._due_now():
                    return
            limit = (self.now_ns + 1) << _SEQ_BITS
            while timers and timers[0][0] < limit:
                timer = heappop(timers)[1]
                callback = timer.callback
                if callback is None:
                    self.cancelled -= 1
                else:
                    timer.callback = None  # fired: a late cancel is a no-op
                    ready.append((callback, timer.args))
            for _ in range(len(ready)):
                callback, args = popleft()
                callback(*args)

    def _due_now(self) -> bool:
        timers = self._timers
        while timers and timers[0][1].callback is None:
            heapq.heappop(timers)
            self.cancelled -= 1
        return bool(timers) and timers[0][0] >> _SEQ_BITS <= self.now_ns

    def _advance(self) -> bool:
        """Move time to the next live timer (never back); False if there is none."""
        timers = self._timers
        if self.cancelled > _COMPACT_MIN and 2 * self.cancelled > len(timers):
            live = [entry for entry in timers if entry[1].callback is not None]
            heapq.heapify(live)
            timers[:] = live
            self.cancelled = 0
        while timers and timers[0][1].callback is None:
            heapq.heappop(timers)
            self.cancelled -= 1
        if not timers:
            return False
        self.now_ns = max(self.now_ns, timers[0][0] >> _SEQ_BITS)
        return True
