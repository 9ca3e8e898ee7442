"""The one interface the kubelet's rules run on: now, a timer, and a callback soon.

The image manager, pull queue, simulated registry, pod workers and image GC never await: each
is a set of synchronous decision steps, chained by callbacks through a `Scheduler` (the sans-I/O
pattern of h11 and wsproto). Two schedulers run them:

- `LoopScheduler`, over an asyncio loop: the daemon and real-time scenarios, where the loop also
  serves HTTP and real registries, and where the few steps that must wait on I/O (a real
  registry's pull, a credential plugin) run as asyncio tasks that call back when done;
- `EventCore`, a lean discrete-event core for scenarios in virtual time: timers per instant and a
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

# Cancelled timers kept before they are dropped all at once.
_COMPACT_MIN = 100


class Timer(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    @property
    def now_ns(self) -> int:
        """The time, in integer nanoseconds (loop time, or virtual time from 0). A property:
        the event core's is a plain attribute, read a dozen times per simulated pull."""
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

    @property
    def now_ns(self) -> int:
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
    """An `EventCore` timer: cancelled by dropping its callback; left in its instant until due,
    then run in that turn, where a cancel still stops it (as asyncio skips a cancelled handle
    it had already made ready). A cancel counts it in `core.cancelled` until the core drops it,
    at its instant or when compacting."""

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
    `run` (a bug in a simulation must stop it, not be logged and skipped).

    Timers are kept per instant, in the order they were scheduled, with a heap of the instants:
    a large scenario's nodes act in step (pods created at the same seconds, fair shares ending
    together), so a run of a million timers has a few dozen distinct instants, and scheduling
    a timer is a list append rather than a heap push."""

    __slots__ = ("_count", "_ending", "_instants", "_ready", "_whens", "cancelled", "now_ns")

    def __init__(self) -> None:
        self.now_ns = 0
        self._instants: dict[int, list[CoreTimer]] = {}  # instant -> its timers, in order
        self._whens: list[int] = []  # heap of the instants in `_instants`
        self._count = 0  # timers in `_instants`, cancelled ones included
        self._ready: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self._ending = False
        self.cancelled = 0  # cancelled timers still in `_instants`

    def call_at(
        self, when: int, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts
    ) -> CoreTimer:
        timer = CoreTimer(self, callback, args)
        bucket = self._instants.get(when)
        if bucket is None:
            self._instants[when] = [timer]
            heapq.heappush(self._whens, when)
        else:
            bucket.append(timer)
        self._count += 1
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
        whens = self._whens
        instants = self._instants
        heappop = heapq.heappop
        popleft = ready.popleft
        while True:
            if not ready:
                if not self._ending:
                    if not self._advance():
                        return
                elif not self._due_now():
                    return
            now = self.now_ns
            # A turn runs what was queued before it, then the timers due now, in order (as
            # asyncio's loop appends them to its ready queue); what they queue runs next turn.
            due: list[list[CoreTimer]] = []
            while whens and whens[0] <= now:
                bucket = instants.pop(heappop(whens))
                self._count -= len(bucket)
                due.append(bucket)
            for _ in range(len(ready)):
                callback, args = popleft()
                callback(*args)
            for bucket in due:
                for timer in bucket:
                    fire = timer.callback
                    if fire is None:  # cancelled before it fell due, or in this turn
                        self.cancelled -= 1  # dropped from `_instants` now
                        continue
                    timer.callback = None  # fired: a later cancel is a no-op
                    fire(*timer.args)

    def _next_live(self) -> int | None:
        """The first instant with a timer not cancelled (dropping the instants before it,
        whose timers all were), or None."""
        whens = self._whens
        instants = self._instants
        if self.cancelled > _COMPACT_MIN and 2 * self.cancelled > self._count:
            self._compact()
        while whens:
            when = whens[0]
            bucket = instants[when]
            for timer in bucket:
                if timer.callback is not None:
                    return when
            heapq.heappop(whens)
            del instants[when]
            self._count -= len(bucket)
            self.cancelled -= len(bucket)
        return None

    def _compact(self) -> None:
        """Drop the cancelled timers, so a run that cancels many holds no more than it must."""
        live: dict[int, list[CoreTimer]] = {}
        for when, bucket in self._instants.items():
            kept = [timer for timer in bucket if timer.callback is not None]
            if kept:
                live[when] = kept
        self._instants.clear()  # in place: `run` holds it
        self._instants.update(live)
        self._whens[:] = list(live)
        heapq.heapify(self._whens)
        self._count = sum(len(bucket) for bucket in live.values())
        self.cancelled = 0

    def _due_now(self) -> bool:
        when = self._next_live()
        return when is not None and when <= self.now_ns

    def _advance(self) -> bool:
        """Move time to the next live timer (never back); False if there is none."""
        when = self._next_live()
        if when is None:
            return False
        self.now_ns = max(self.now_ns, when)
        return True
