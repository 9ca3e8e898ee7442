"""Image GC on one node: the kubelet's detection and collection loops, owned by the node.

The kubelet sweeps its images when it starts (`ImageGCManager.Start`) and runs
`GarbageCollect` every `ImageGCPeriod` (5 minutes) after that; with
`imageGCHighThresholdPercent: 100` it starts no GC loop, but the sweeps go on. Here one timer
on the node's clock does both, re-armed after each period, so runs land exactly on 5m, 10m, ...
from the node's start in virtual time. A timer rather than a task: a 100,000-node scenario then
carries 100,000 timer handles, not 100,000 suspended coroutines. Its callback is guarded like a
task: a crash is logged at once (`task_crashed`) and ends the loop. A run's node events
(`FreeDiskSpaceFailed`, `ImageGCFailed`) go to the node's event sink; its history (bounded),
totals and disk samples are what reports, metrics and debug endpoints read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from kubesim_images.clock import call_at_ns, now_ns
from kubesim_images.events import EventSink, node_event
from kubesim_images.image_gc import GC_PERIOD_NS, GCPolicy, GCRun, ImageGCManager
from kubesim_images.logging import get_logger
from kubesim_images.store import ImageStore

InUse = Callable[[], Collection[str]]

_HISTORY = 32  # runs kept for /debug and reports; totals count them all
_DISK_SAMPLES = 100_000  # (t, used before, used after) per period: a year of 5-minute samples
_log = get_logger()


class NodeImageGC:
    # One per node, 100,000 in a large scenario: slots, and nothing built before it is needed.
    __slots__ = (
        "_due",
        "_events",
        "_in_use",
        "_started",
        "_timer",
        "bytes_freed",
        "disk",
        "history",
        "images_collected",
        "manager",
        "node",
        "runs",
        "store",
    )

    def __init__(
        self,
        node: str,
        store: ImageStore,
        policy: GCPolicy,
        events: EventSink,
        in_use: InUse,
    ) -> None:
        self.node = node
        self.store = store
        self.manager = ImageGCManager(policy, store)
        self.history: list[GCRun] = []  # the last runs, oldest first
        self.runs = 0
        self.images_collected = 0
        self.bytes_freed = 0  # bytes the filesystem got back, shared layers counted once
        self.disk: list[tuple[int, int, int]] = []  # (t, used before, used after) each period
        self._events = events
        self._in_use = in_use
        self._timer: asyncio.TimerHandle | None = None
        self._started = False
        self._due = 0

    @property
    def policy(self) -> GCPolicy:
        return self.manager.policy

    def start(self) -> None:
        """Sweep now (the node's start) and collect every 5 minutes from now on."""
        if self._started:
            return
        self._started = True
        loop = asyncio.get_running_loop()
        now = self._due = now_ns(loop)
        self.manager.began = now
        self.manager.detect(now, self._in_use())
        self._arm(loop)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due += GC_PERIOD_NS
        self._timer = call_at_ns(loop, self._due, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        try:
            self.collect(now_ns(loop))
        except Exception:  # noqa: BLE001 - the guard: any crash is logged, never silent
            _log.exception("task_crashed", task=f"image-gc:{self.node}", node=self.node)
            return
        self._arm(loop)

    def collect(self, now: int) -> GCRun | None:
        """One period: a GC run, or only a sweep when GC is off (high threshold 100)."""
        in_use = self._in_use()
        before = self.store.usage
        if not self.policy.enabled:
            self.manager.detect(now, in_use)
            self._sample(now, before, before)
            return None
        run = self.manager.periodic(now, in_use)
        self._sample(now, before, self.store.usage)
        self.history.append(run)
        if len(self.history) > _HISTORY:
            del self.history[0]
        self.runs += 1
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

    def _sample(self, now: int, before: int, after: int) -> None:
        if len(self.disk) < _DISK_SAMPLES:
            self.disk.append((now, before, after))
