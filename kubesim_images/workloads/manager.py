"""Runs the workload controllers: one guarded task, woken by changes, never polling.

Every change of a Pod, ReplicaSet or Deployment is mapped to the keys it concerns (a pod to
the ReplicaSet that controls it, a ReplicaSet to itself and its Deployment) and queued once,
as a workqueue deduplicates; the task syncs queued keys one at a time and sleeps when the
queue is empty. A sync may ask to be looked at again later (minReadySeconds, a progress
deadline): that is a timer on the loop, not a loop. A sync that fails is logged and retried
after a short back-off, so a refused write cannot spin the loop.

Deletion cascades as the garbage collector's background policy does: when a Deployment or a
ReplicaSet is deleted, whatever it controlled in that namespace whose owner is gone is
deleted next (ReplicaSets, then their pods). The same sweep runs at start, so dependents
orphaned by a crash between two deletions are found again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from kubesim_images.logging import get_logger
from kubesim_images.tasks import create_guarded_task, stop_task
from kubesim_images.workloads.deployment import DeploymentController
from kubesim_images.workloads.objects import Obj, Objects, controller_uid, owner_refs
from kubesim_images.workloads.replicaset import ReplicaSetController

Watcher = Callable[[str, dict[str, Any]], None]
Subscribe = Callable[[str, Watcher], Callable[[], None]]
Key = tuple[str, str, str]  # (Deployment | ReplicaSet | gc, namespace, name)
KINDS = ("Deployment", "ReplicaSet", "Pod")
OWNED = {"ReplicaSet": "Deployment", "Pod": "ReplicaSet"}
RETRY_SECONDS = (0.1, 0.5, 2.0, 5.0)  # after a failed sync: a refused write is not retried hot

_log = get_logger()


class WorkloadControllers:
    def __init__(
        self,
        objects: Objects,
        subscribe: Subscribe,
        *,
        rng: random.Random,
        now: Callable[[], dt.datetime],
    ) -> None:
        self._objects = objects
        self._subscribe = subscribe
        self.replicasets = ReplicaSetController(objects, rng=rng, now=now)
        self.deployments = DeploymentController(objects, now=now)
        self._queue: OrderedDict[Key, None] = OrderedDict()
        self._wake = asyncio.Event()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._failures: dict[Key, int] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()  # set whenever the queue is drained (tests wait on it)

    def start(self) -> None:
        for kind in KINDS:
            self._unsubscribe.append(self._subscribe(kind, self._changed))
        namespaces = {obj["metadata"]["namespace"] for kind in KINDS for obj in self._all(kind)}
        for namespace in sorted(namespaces):
            self.enqueue(("gc", namespace, ""))
        for kind in ("ReplicaSet", "Deployment"):
            for obj in self._all(kind):
                self.enqueue((kind, obj["metadata"]["namespace"], obj["metadata"]["name"]))
        self._task = create_guarded_task(self._run(), name="workload-controllers")

    def _all(self, kind: str) -> list[Obj]:
        return self._objects.list(kind, "")

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await stop_task(self._task)
        self._task = None

    def enqueue(self, key: Key) -> None:
        self._queue[key] = None
        self.idle.clear()
        self._wake.set()

    def _changed(self, change: str, obj: dict[str, Any]) -> None:
        kind, meta = obj.get("kind"), obj["metadata"]
        namespace = meta.get("namespace", "")
        if kind in {"Deployment", "ReplicaSet"}:
            self.enqueue((str(kind), namespace, meta["name"]))
        owner_kind = OWNED.get(str(kind))
        owner = controller_uid(obj)
        if owner_kind is not None and owner is not None:
            for ref in owner_refs(obj):
                if ref.get("controller") is True and ref.get("kind") == owner_kind:
                    self.enqueue((owner_kind, namespace, str(ref.get("name"))))
        if change == "DELETED" and kind in {"Deployment", "ReplicaSet"}:
            self.enqueue(("gc", namespace, ""))
        if change == "DELETED" and kind == "Pod":
            self._pod_gone(namespace, obj)

    def _pod_gone(self, namespace: str, pod: Obj) -> None:
        """A pod is gone for good (its deletion is graceful: its ReplicaSet stopped counting it
        when it began terminating, so the set's status does not change now). A Recreate rollout
        waits for exactly this, as the deployment controller's deletePod does: its Deployment
        is synced again."""
        for ref in owner_refs(pod):
            if ref.get("controller") is True and ref.get("kind") == "ReplicaSet":
                rs = self._objects.get("ReplicaSet", namespace, str(ref.get("name")))
                for owner in owner_refs(rs) if rs is not None else []:
                    if owner.get("controller") is True and owner.get("kind") == "Deployment":
                        self.enqueue(("Deployment", namespace, str(owner.get("name"))))

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self.idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            key, _ = self._queue.popitem(last=False)
            try:
                again = await self._sync(key)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one object's failure must not stop the others
                failures = self._failures.get(key, 0)
                self._failures[key] = failures + 1
                _log.exception("workload_sync_failed", kind=key[0], namespace=key[1], name=key[2])
                again = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
            else:
                self._failures.pop(key, None)
            if again is not None:
                self._later(key, again)
            await asyncio.sleep(0)  # a long queue never holds the loop: serve requests between

    def _later(self, key: Key, seconds: float) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.enqueue(key)

        self._timers[key] = asyncio.get_running_loop().call_later(seconds, fire)

    async def _sync(self, key: Key) -> float | None:
        kind, namespace, name = key
        if kind == "Deployment":
            return await self.deployments.sync(namespace, name)
        if kind == "ReplicaSet":
            return await self.replicasets.sync(namespace, name)
        await self._collect(namespace)
        return None

    async def _collect(self, namespace: str) -> None:
        """Delete what a deleted owner controlled (background cascading deletion)."""
        for kind, owner_kind in (("ReplicaSet", "Deployment"), ("Pod", "ReplicaSet")):
            owners = {o["metadata"]["uid"] for o in self._objects.list(owner_kind, namespace)}
            for obj in self._objects.list(kind, namespace):
                refs = [
                    r
                    for r in owner_refs(obj)
                    if r.get("kind") == owner_kind and r.get("apiVersion") == "apps/v1"
                ]
                meta = obj["metadata"]
                if meta.get("deletionTimestamp"):
                    continue  # already on its way out
                if refs and not any(r.get("uid") in owners for r in refs):
                    await self._objects.delete(kind, namespace, meta["name"], meta["uid"])
