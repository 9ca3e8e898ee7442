"""The scheduler's periodic retry of the pods no node takes.

kube-scheduler keeps a pod that failed to schedule in its unschedulable queue; a cluster event
that may make it fit (a node added or updated, an assigned pod deleted) moves it back to the
active queue at once (`node_updated`, a pod's removal, in pods.py), and besides, every
FLUSH_INTERVAL (30 s) it moves back every pod that has waited longer than MAX_WAIT (5 min,
`podMaxInUnschedulablePodsDuration`). So a Pending pod is tried again at least every five
minutes whatever happens, and each failed try is one more `FailedScheduling` event (`kubectl
describe pod`: `(x3 over 10m)`).

One owned, guarded task runs the flush while any pod waits, and ends when none does. Time is
the event loop's, so a test runs it in virtual time, or with shorter periods.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kubesim_images.logging import get_logger
from kubesim_images.state import StateError
from kubesim_images.tasks import create_guarded_task, stop_task

_log = get_logger()

FLUSH_INTERVAL = 30.0
MAX_WAIT = 300.0


class UnschedulablePods:
    """The pods waiting for a node, by UID, with when each was last tried (loop time)."""

    def __init__(
        self,
        retry: Callable[[str], None],
        *,
        flush_interval: float = FLUSH_INTERVAL,
        max_wait: float = MAX_WAIT,
    ) -> None:
        self._retry = retry
        self.flush_interval = flush_interval
        self.max_wait = max_wait
        self._tried: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def __contains__(self, uid: str) -> bool:
        return uid in self._tried

    def __len__(self) -> int:
        return len(self._tried)

    def tried(self, uid: str) -> None:
        """The pod was just tried and no node took it."""
        self._tried[uid] = asyncio.get_running_loop().time()
        if self._task is None or self._task.done():
            self._task = create_guarded_task(self._flush(), name="scheduler-unschedulable-flush")

    def discard(self, uid: str) -> None:
        """The pod was bound or deleted: no longer waiting."""
        self._tried.pop(uid, None)

    def due(self, now: float) -> list[str]:
        """The pods that have waited MAX_WAIT or longer since their last try, oldest first."""
        waiting = sorted(self._tried.items(), key=lambda item: item[1])
        return [uid for uid, since in waiting if now - since >= self.max_wait]

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._tried:
            await asyncio.sleep(self.flush_interval)
            for uid in self.due(loop.time()):
                if uid not in self._tried:
                    continue  # bound or deleted by an earlier retry of this flush
                self._tried[uid] = loop.time()
                try:
                    self._retry(uid)
                except StateError as exc:  # tried again at the next flush
                    _log.warning("schedule_retry_failed", pod_uid=uid, error=str(exc))

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
