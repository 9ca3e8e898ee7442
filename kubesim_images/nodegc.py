"""Image GC on one node: the kubelet's detection and collection loops, owned by the node.

The kubelet sweeps its images when it starts (`ImageGCManager.Start`) and runs
`GarbageCollect` every `ImageGCPeriod` (5 minutes) after that; with
`imageGCHighThresholdPercent: 100` it starts no GC loop, but the sweeps go on. Here one guarded
task does both on the node's clock, so runs land exactly on 5m, 10m, ... from the node's start
in virtual time. A run's node events (`FreeDiskSpaceFailed`, `ImageGCFailed`) go to the node's
event sink; its history (bounded) and totals are what reports, metrics and debug endpoints read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Collection

from kubesim_images.clock import now_ns, sleep_ns
from kubesim_images.events import EventSink, node_event
from kubesim_images.image_gc import GC_PERIOD_NS, GCPolicy, GCRun, ImageGCManager
from kubesim_images.logging import get_logger
from kubesim_images.store import ImageStore
from kubesim_images.tasks import create_guarded_task, stop_task

InUse = Callable[[], Collection[str]]

_HISTORY = 32  # runs kept for /debug and reports; totals count them all
_DISK_SAMPLES = 100_000  # (t, used before, used after) per period: a year of 5-minute samples


class NodeImageGC:
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
        self.history: deque[GCRun] = deque(maxlen=_HISTORY)
        self.runs = 0
        self.images_collected = 0
        self.bytes_freed = 0  # bytes the filesystem got back, shared layers counted once
        self.disk: list[tuple[int, int, int]] = []  # (t, used before, used after) each period
        self._events = events
        self._in_use = in_use
        self._task: asyncio.Task[None] | None = None
        self._log = get_logger(node=node)
        self._log_runs = self._log.is_enabled_for(logging.INFO)

    @property
    def policy(self) -> GCPolicy:
        return self.manager.policy

    def start(self) -> None:
        """Sweep now (the node's start) and collect every 5 minutes from now on."""
        if self._task is None:
            now = now_ns()
            self.manager.began = now
            self.manager.detect(now, self._in_use())
            self._task = create_guarded_task(
                self._loop(now), name=f"image-gc:{self.node}", node=self.node
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    async def _loop(self, began: int) -> None:
        due = began
        while True:
            due += GC_PERIOD_NS
            await sleep_ns(due - now_ns())
            self.collect(now_ns())

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
        self.runs += 1
        self.images_collected += len(run.removed)
        self.bytes_freed += run.released
        for event in run.events:
            self._events.emit(node_event(now, self.node, event.type, event.reason, event.message))
        if self._log_runs and (run.removed or run.error):
            self._log.info(
                "image_gc",
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
