"""Image GC on one node: the kubelet's detection and collection loops, owned by the node.

The kubelet sweeps its images when it starts (`ImageGCManager.Start`) and runs
`GarbageCollect` every `ImageGCPeriod` (5 minutes) after that; with
`imageGCHighThresholdPercent: 100` it starts no GC loop, but the sweeps go on. Here one timer
on the node's clock does both, re-armed after each period, so runs land exactly on 5m, 10m, ...
from the node's start in virtual time. A timer rather than a task: a 100,000-node scenario then
carries 100,000 timer handles, not 100,000 suspended coroutines; and a scenario's nodes, which
all start at 0, share one timer per instant (`GCTicker`), run in the order their own timers
would have run. Its callback is guarded like a task: a crash is logged at once
(`task_crashed`) and ends the loop. Most periods of a large run are quiet (usage under the
threshold, no maximum age) and cost one step; told of every change of the node's images, a
period that finds nothing changed skips even the sweep. A run's node events
(`FreeDiskSpaceFailed`, `ImageGCFailed`) go to the node's event sink; its history (bounded),
totals and disk samples are what the node's snapshot carries to reports, metrics and debug
endpoints.

A real content store blocks on its disk (SQLite commits, unlinks, a walk of its files), so
with such a runtime (`BlockingRuntime`) the timer starts a guarded task instead, which does the
runtime's part of the run in a worker thread and the bookkeeping back on the loop; the daemon
keeps serving while its disk is cleaned. Runs never overlap (on-demand runs wait their turn),
and stopping waits for a run under way rather than abandoning its thread mid-removal.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager

from kubesim_images.errors import ImageFsStatsError
from kubesim_images.events import EventSink, node_event
from kubesim_images.image_gc import (
    GC_PERIOD_NS,
    BlockingRuntime,
    FsStats,
    GCPolicy,
    GCRun,
    ImageGCManager,
    ImageRuntime,
    ImageUsage,
    quiet_run,
)
from kubesim_images.logging import get_logger
from kubesim_images.scheduler import LoopScheduler, Scheduler, Timer
from kubesim_images.tasks import create_guarded_task

InUse = Callable[[], Collection[str]]

_HISTORY = 32  # runs kept for /debug and reports; totals count them all
_DISK_SAMPLES = 100_000  # (t, used before, used after) per period: a year of 5-minute samples
_log = get_logger()


class NodeImageGC:
    # One per node, 100,000 in a large scenario: slots, and nothing built before it is needed.
    __slots__ = (
        "_batch",
        "_due",
        "_events",
        "_high",
        "_in_use",
        "_lock",
        "_offload",
        "_quick",
        "_running",
        "_same",
        "_scheduler",
        "_started",
        "_ticker",
        "_timer",
        "_told",
        "bytes_freed",
        "disk",
        "history",
        "images_collected",
        "manager",
        "node",
        "runs",
        "runtime",
    )

    def __init__(
        self,
        node: str,
        runtime: ImageRuntime,
        policy: GCPolicy,
        events: EventSink,
        in_use: InUse,
        scheduler: Scheduler | None = None,
        ticker: GCTicker | None = None,
        *,
        told_of_changes: bool = False,
    ) -> None:
        self.node = node
        self._scheduler: Scheduler = LoopScheduler() if scheduler is None else scheduler
        self.runtime = runtime  # the node's store, or a real content store behind it
        self.manager = ImageGCManager(policy, runtime)
        self.history: deque[GCRun] = deque(maxlen=_HISTORY)  # the last runs, oldest first
        self.runs = 0
        self.images_collected = 0
        self.bytes_freed = 0  # bytes the filesystem got back, shared layers counted once
        self.disk: list[tuple[int, int, int]] = []  # (t, used before, used after) each period
        self._events = events
        self._in_use = in_use
        self._timer: Timer | None = None
        # With a ticker shared by the nodes of a scenario, the node's period ends in a batch
        # of them rather than on a timer of its own.
        self._ticker = ticker
        self._batch: _Batch | None = None
        # `told_of_changes`: the owner calls `images_changed` whenever the runtime's images
        # change, so a period that finds the same images in use as the last quiet one needs
        # no sweep: `_same` is that in-use collection and the records it marked used.
        self._told = told_of_changes
        self._same: tuple[Collection[str], list[ImageUsage]] | None = None
        self._started = False
        self._due = 0
        # A runtime that blocks on a disk (a real content store, a `BlockingRuntime`) is
        # worked in a thread. hasattr, not isinstance: a protocol check costs microseconds,
        # and a large scenario builds 100,000 of these.
        self._offload = hasattr(runtime, "settle")
        # Periods that can be quiet: on the loop, GC on, no maximum age (the policy is fixed).
        self._quick = not self._offload and policy.enabled and not policy.max_age
        self._high = policy.high_threshold_percent
        self._running: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock() if self._offload else None

    @property
    def policy(self) -> GCPolicy:
        return self.manager.policy

    def start(self) -> None:
        """Sweep now (the node's start) and collect every 5 minutes from now on."""
        if self._started:
            return
        self._started = True
        now = self._due = self._scheduler.now_ns
        self.manager.began = now
        self.manager.detect(now, self._in_use())
        self._arm()

    def halt(self) -> None:
        """No further run (a run under way in a worker thread goes on: `stop` waits for it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._batch is not None:
            self._batch.drop(self)
            self._batch = None
        self._started = False

    async def stop(self) -> None:
        """No further run; a run under way in a worker thread is waited for, not abandoned:
        the thread cannot be stopped, and the store it works on is closed after us."""
        self.halt()
        if self._running is not None:
            await asyncio.shield(self._running)

    def _arm(self) -> None:
        self._due += GC_PERIOD_NS
        if self._ticker is None:
            self._timer = self._scheduler.call_at(self._due, self._tick)
        else:
            self._batch = self._ticker.join(self, self._due)

    def _tick(self) -> None:
        self._timer = None
        if self._offload:
            self._running = create_guarded_task(
                self._periodic_off_loop(), name=f"image-gc:{self.node}", node=self.node
            )
            return
        try:
            self.collect(self._scheduler.now_ns)
        except Exception:  # noqa: BLE001 - the guard: any crash is logged, never silent
            _log.exception("task_crashed", task=f"image-gc:{self.node}", node=self.node)
            return
        self._arm()

    async def _periodic_off_loop(self) -> None:
        await self.collect_now()
        if self._started:
            self._arm()

    def collect(self, now: int) -> GCRun | None:
        """One period on the loop: a GC run, or only a sweep when GC is off (threshold 100)."""
        in_use = self._in_use()
        if self._quick:
            run = self._quiet(now, in_use)
            if run is not None:
                return run
        self._same = None
        before, run, after = self._collect(now, in_use)
        return self._record(now, before, run, after)

    def _quiet(self, now: int, in_use: Collection[str]) -> GCRun | None:
        """Most periods of a large run, on the loop: usage under the high threshold and no
        maximum age, so the run is a sweep and a reading, and the disk stays as it was. Done
        in one step here (millions of them); None when the period may have more to do."""
        try:
            capacity, available = self.runtime.image_fs_stats()
        except ImageFsStatsError:
            return None  # the full run reads it again, and reports the error
        if capacity <= 0:
            return None
        usage = 100 - min(available, capacity) * 100 // capacity
        if usage >= self._high:
            return None
        same = self._same
        if same is not None and same[0] is in_use:
            # No image came or went since the last sweep, and the pods hold the same ones:
            # the sweep would only mark those used now.
            for record in same[1]:
                record.last_used = now
        else:
            manager = self.manager
            manager.quiet_period(now, in_use)
            if self._told:
                records = manager.records
                self._same = (in_use, [records[i] for i in in_use if i in records])
        ticker = self._ticker
        run = quiet_run(now, usage) if ticker is None else ticker.quiet_run(now, usage)
        used = capacity - available
        if len(self.disk) < _DISK_SAMPLES:
            self.disk.append((now, used, used))
        self.history.append(run)
        self.runs += 1
        return run

    def images_changed(self) -> None:
        """The runtime's images changed (with `told_of_changes`): the next period sweeps."""
        self._same = None

    def image_stored(self, image_id: str, *, pinned: bool) -> None:
        """An image was stored or renamed (with `told_of_changes`): the next period sweeps
        unless the sweep knows it already, as it is (a pull of an image the node has)."""
        if self._same is None:
            return  # the next period sweeps anyway
        known = self.manager.records.get(image_id)
        if known is None or known.pinned != pinned:
            self._same = None

    async def collect_now(self) -> GCRun | None:
        """One run now, on demand or from the loop's timer. With a runtime that blocks on a
        disk, its work runs in a worker thread and only the bookkeeping on the loop; runs never
        overlap (one asked for during another waits for it, then runs)."""
        if not self._offload:
            return self.collect(self._scheduler.now_ns)
        assert self._lock is not None  # noqa: S101 - made with _offload
        runtime = self.runtime
        assert isinstance(runtime, BlockingRuntime)  # noqa: S101 - what _offload means
        async with self._lock:
            now = self._scheduler.now_ns
            in_use = self._in_use()

            def work() -> tuple[int | None, GCRun | None, int | None]:
                runtime.refresh()
                return self._collect(now, in_use)

            before, run, after = await asyncio.to_thread(work)
            runtime.settle()
            return self._record(now, before, run, after)

    def _collect(
        self, now: int, in_use: Collection[str]
    ) -> tuple[int | None, GCRun | None, int | None]:
        """The runtime's part of a period (blocking for a real store): used, run, used."""
        try:
            stats: FsStats | None = self.runtime.image_fs_stats()
        except ImageFsStatsError:
            stats = None  # the run reads it again, and reports the error
        before = None if stats is None else stats.capacity - stats.available
        if not self.policy.enabled:
            self.manager.detect(now, in_use)
            return before, None, before
        run = self.manager.periodic(now, in_use, stats)
        if not run.removed and not self._offload:
            # Nothing removed and nothing else ran meanwhile (on the loop, a period is one
            # step): the disk is as it was.
            return before, run, before
        return before, run, self.used()

    def _record(
        self, now: int, before: int | None, run: GCRun | None, after: int | None
    ) -> GCRun | None:
        """The loop's part: disk sample, history, totals, node events and the log line."""
        if before is not None and after is not None and len(self.disk) < _DISK_SAMPLES:
            self.disk.append((now, before, after))
        if run is None:
            return None
        self.history.append(run)
        self.runs += 1
        if run.removed:
            self.images_collected += len(run.removed)
            self.bytes_freed += run.released
        for event in run.events:
            self._events.emit(node_event(now, self.node, event.type, event.reason, event.message))
        if (run.removed or run.error) and _log.is_enabled_for(logging.INFO):
            _log.info(
                "image_gc",
                node=self.node,
                usage_percent=run.usage_percent,
                amount_to_free=run.amount_to_free,
                removed=len(run.removed),
                released=run.released,
                error=run.error,
            )
        return run

    def used(self) -> int | None:
        """Bytes used on the image filesystem, as the runtime reports it (None: unmeasurable,
        which the GC run itself reports as its error)."""
        try:
            stats = self.runtime.image_fs_stats()
        except ImageFsStatsError:
            return None
        return stats.capacity - stats.available


class _Batch:
    """The nodes whose period ends at `due`, in the order their timers would have been set."""

    __slots__ = ("due", "members", "timer")

    def __init__(self, due: int) -> None:
        self.due = due
        self.members: dict[NodeImageGC, None] = {}  # an ordered set: halting one is O(1)
        self.timer: Timer | None = None

    def drop(self, gc: NodeImageGC) -> None:
        del self.members[gc]
        if not self.members and self.timer is not None:
            self.timer.cancel()  # the last one halted: nothing runs then
            self.timer = None


class GCTicker:
    """One timer per GC instant for all the nodes of a scheduler whose period ends then.

    A scenario starts all its nodes at 0, so every 5 minutes 100,000 nodes would each fire a
    timer of their own at the same nanosecond. Those timers are contiguous among the timers
    due then (set one after another, nothing else set for that instant in between), so they
    run one after another in one turn; one timer that runs them in the same order is the
    same schedule at a fraction of the cost. Contiguity is what makes nodes share a batch:
    the periods re-armed while one batch runs (nothing else runs meanwhile), and the nodes
    started inside `together` (whose caller sets no other timer for that instant meanwhile).
    Any other arming (a node started alone, a period re-armed after a worker thread's run)
    gets a batch of its own, which is exactly a timer of its own.
    """

    __slots__ = ("_forming", "_open", "_quiet", "_quiet_at", "_scheduler")

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._forming = False  # whether arms may join `_open` now
        self._open: _Batch | None = None  # the batch being formed, if any
        # The quiet runs of the last instant, by usage: one run (a tuple, immutable) serves
        # every node's history then, not one each (1.8 million at 100,000 nodes).
        self._quiet_at = -1
        self._quiet: dict[int, GCRun] = {}

    def quiet_run(self, now: int, usage_percent: int) -> GCRun:
        if now != self._quiet_at:
            self._quiet_at, self._quiet = now, {}
        run = self._quiet.get(usage_percent)
        if run is None:
            run = self._quiet[usage_percent] = quiet_run(now, usage_percent)
        return run

    @contextmanager
    def together(self) -> Iterator[None]:
        """Nodes started inside share their periods' timers: the caller promises to set no
        timer of its own for the instant of their first period meanwhile."""
        outer = self._forming, self._open
        self._forming, self._open = True, None
        try:
            yield
        finally:
            self._forming, self._open = outer

    def join(self, gc: NodeImageGC, due: int) -> _Batch:
        """The batch `gc`'s period ending at `due` runs in (the open one, or a new one)."""
        batch = self._open
        if batch is None or batch.due != due or batch.timer is None:
            batch = _Batch(due)
            batch.timer = self._scheduler.call_at(due, self._fire, batch)
            if self._forming:
                self._open = batch
        batch.members[gc] = None
        return batch

    def _fire(self, batch: _Batch) -> None:
        batch.timer = None
        members = batch.members
        outer = self._forming, self._open
        self._forming, self._open = True, None
        try:
            for gc in list(members):
                if gc._batch is batch:  # noqa: SLF001 - halted meanwhile: skipped, as cancelled
                    gc._batch = None  # noqa: SLF001
                    gc._tick()  # noqa: SLF001
        finally:
            self._forming, self._open = outer
