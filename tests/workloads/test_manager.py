"""The controllers' runner over an in-memory API: change-driven syncs, the ReplicaSet and
Deployment controllers end to end without HTTP, a failed sync logged and retried (never a
hot loop), the background cascade, and a stop that leaves no task behind.

`MemoryObjects` is the `workloads.objects.Objects` protocol over dicts: every write publishes
one change to the subscribers, as the daemon's change feed does, and a pod is Ready the moment
it is created (the kubelet's part is covered by the daemon's tests).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
import random
from collections.abc import Callable
from typing import Any

from structlog.testing import capture_logs

from kubesim_images.workloads.manager import WorkloadControllers
from kubesim_images.workloads.objects import Obj, ObjectsError

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
STAMP = "2026-01-01T00:00:00Z"
Watcher = Callable[[str, dict[str, Any]], None]


class MemoryObjects:
    def __init__(self) -> None:
        self.docs: dict[tuple[str, str, str], Obj] = {}
        self.watchers: dict[str, list[Watcher]] = {}
        self.events: list[tuple[str, str, str]] = []
        self.history: list[tuple[str, str, Obj]] = []
        self.fail_creates = 0
        # Graceful pod deletion, as the daemon's: a deleted pod is first marked (MODIFIED with
        # a deletionTimestamp) and goes (DELETED) only when the test lets the kubelet finish.
        self.graceful = False
        self._uids = itertools.count(1)

    def subscribe(self, kind: str, watcher: Watcher) -> Callable[[], None]:
        self.watchers.setdefault(kind, []).append(watcher)
        return lambda: self.watchers[kind].remove(watcher)

    def _publish(self, change: str, doc: Obj) -> None:
        self.history.append((change, doc["kind"], copy.deepcopy(doc)))
        for watcher in list(self.watchers.get(doc["kind"], ())):
            watcher(change, doc)

    def list(self, kind: str, namespace: str) -> list[Obj]:
        return [
            d
            for (k, ns, _), d in self.docs.items()
            if k == kind and (not namespace or ns == namespace)
        ]

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.docs.get((kind, namespace, name))

    def create(self, kind: str, namespace: str, body: Obj) -> Obj:
        if kind == "Pod" and self.fail_creates:
            self.fail_creates -= 1
            raise ObjectsError("the state store refused the write")
        doc = copy.deepcopy(body)
        doc.setdefault("kind", kind)
        meta = doc["metadata"]
        meta.update(namespace=namespace, uid=f"uid-{next(self._uids)}", creationTimestamp=STAMP)
        meta.setdefault("generation", 1)
        if kind == "Pod":
            ready = {"type": "Ready", "status": "True", "lastTransitionTime": STAMP}
            doc["status"] = {"phase": "Running", "conditions": [ready]}
        self.docs[(kind, namespace, meta["name"])] = doc
        self._publish("ADDED", doc)
        return doc

    def update(self, kind: str, doc: Obj) -> Obj:
        key = (kind, doc["metadata"]["namespace"], doc["metadata"]["name"])
        before = self.docs[key]
        new = copy.deepcopy(doc)
        if new.get("spec") != before.get("spec"):
            new["metadata"]["generation"] = before["metadata"].get("generation", 1) + 1
        new["status"] = before.get("status", {})
        self.docs[key] = new
        self._publish("MODIFIED", new)
        return new

    def update_status(self, kind: str, doc: Obj) -> Obj:
        key = (kind, doc["metadata"]["namespace"], doc["metadata"]["name"])
        new = {**self.docs[key], "status": copy.deepcopy(doc["status"])}
        self.docs[key] = new
        self._publish("MODIFIED", new)
        return new

    async def delete(self, kind: str, namespace: str, name: str, uid: str) -> None:
        doc = self.docs.get((kind, namespace, name))
        if doc is None or doc["metadata"]["uid"] != uid:
            return
        if kind == "Pod" and self.graceful:
            if "deletionTimestamp" not in doc["metadata"]:
                doc["metadata"]["deletionTimestamp"] = STAMP
                self._publish("MODIFIED", doc)
            return
        del self.docs[(kind, namespace, name)]
        self._publish("DELETED", doc)

    def finish_terminating(self) -> int:
        """The kubelet's part: every terminating pod goes. Returns how many went."""
        ending = [
            key
            for key, doc in self.docs.items()
            if key[0] == "Pod" and "deletionTimestamp" in doc["metadata"]
        ]
        for key in ending:
            self._publish("DELETED", self.docs.pop(key))
        return len(ending)

    def event(self, obj: Obj, kind: str, reason: str, message: str, component: str) -> None:
        del kind, component
        self.events.append((obj["metadata"]["name"], reason, message))


def workload(kind: str, name: str, replicas: int, image: str = "busybox:1.36") -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


async def settled(manager: WorkloadControllers) -> None:
    """Until the queue is empty and stays so for a loop turn (a sync may enqueue more)."""
    while True:
        await manager.idle.wait()
        await asyncio.sleep(0)
        if manager.idle.is_set():
            return


def started(objects: MemoryObjects) -> WorkloadControllers:
    manager = WorkloadControllers(objects, objects.subscribe, rng=random.Random(1), now=lambda: NOW)
    manager.start()
    return manager


async def test_a_replicaset_creates_its_pods_and_reports_them() -> None:
    objects = MemoryObjects()
    manager = started(objects)
    try:
        objects.create("ReplicaSet", "default", workload("ReplicaSet", "web", 3))
        await settled(manager)
    finally:
        await manager.stop()
    pods = objects.list("Pod", "default")
    assert len(pods) == 3
    rs = objects.get("ReplicaSet", "default", "web")
    assert rs is not None
    assert {p["metadata"]["ownerReferences"][0]["uid"] for p in pods} == {rs["metadata"]["uid"]}
    assert rs["status"] == {
        "replicas": 3,
        "fullyLabeledReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "observedGeneration": 1,
    }
    assert [reason for _, reason, _ in objects.events] == ["SuccessfulCreate"] * 3


async def test_a_failed_sync_is_logged_and_retried_not_spun() -> None:
    objects = MemoryObjects()
    objects.fail_creates = 2
    manager = started(objects)
    try:
        with capture_logs() as logs:
            objects.create("ReplicaSet", "default", workload("ReplicaSet", "web", 1))
            await settled(manager)  # the failed sync; its retry waits on a timer
            failed = [e for e in logs if e["event"] == "workload_sync_failed"]
            assert len(failed) == 1
            assert (failed[0]["kind"], failed[0]["name"]) == ("ReplicaSet", "web")
            assert objects.list("Pod", "default") == []
            created = asyncio.Event()
            objects.subscribe("Pod", lambda _change, _pod: created.set())
            async with asyncio.timeout(10):  # bounds a hang only: the retries are on timers
                await created.wait()
            await settled(manager)
    finally:
        await manager.stop()
    failed = [e for e in logs if e["event"] == "workload_sync_failed"]
    assert len(failed) == 2  # one per refused write: a retry each, no hot loop
    assert len(objects.list("Pod", "default")) == 1


async def test_a_deployment_rolls_within_its_bounds_and_deletion_cascades() -> None:
    objects = MemoryObjects()
    manager = started(objects)
    try:
        d = workload("Deployment", "web", 4)
        d["spec"]["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
        objects.create("Deployment", "default", d)
        await settled(manager)
        current = objects.get("Deployment", "default", "web")
        assert current is not None
        assert current["status"]["availableReplicas"] == 4
        mark = len(objects.history)
        current["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:1.37"
        objects.update("Deployment", current)
        await settled(manager)
        # Over every state the change history passed through: at most 4 + 1 pods, never
        # fewer than 4 available (surge 1, unavailable 0).
        pods: set[str] = {p["metadata"]["name"] for p in objects.list("Pod", "default")}
        alive = {
            doc["metadata"]["name"]
            for change, kind, doc in objects.history[:mark]
            if kind == "Pod" and change == "ADDED"
        } - {
            doc["metadata"]["name"]
            for change, kind, doc in objects.history[:mark]
            if kind == "Pod" and change == "DELETED"
        }
        for change, kind, doc in objects.history[mark:]:
            if kind != "Pod":
                continue
            (alive.add if change == "ADDED" else alive.discard)(doc["metadata"]["name"])
            assert 4 <= len(alive) <= 5
        assert alive == pods
        images = {p["spec"]["containers"][0]["image"] for p in objects.list("Pod", "default")}
        assert images == {"busybox:1.37"}
        done = objects.get("Deployment", "default", "web")
        assert done is not None
        assert done["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        await objects.delete("Deployment", "default", "web", done["metadata"]["uid"])
        await settled(manager)
    finally:
        await manager.stop()
    assert objects.list("ReplicaSet", "default") == []
    assert objects.list("Pod", "default") == []


async def test_recreate_waits_for_terminating_pods_to_be_gone_then_creates_the_new_ones() -> None:
    objects = MemoryObjects()
    objects.graceful = True
    manager = started(objects)
    try:
        d = workload("Deployment", "web", 3)
        d["spec"]["strategy"] = {"type": "Recreate"}
        objects.create("Deployment", "default", d)
        await settled(manager)
        old = {p["metadata"]["name"] for p in objects.list("Pod", "default")}
        assert len(old) == 3
        current = objects.get("Deployment", "default", "web")
        assert current is not None
        current["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:1.37"
        objects.update("Deployment", current)
        await settled(manager)
        # The old pods are terminating, not gone: Recreate creates nothing yet.
        listed = objects.list("Pod", "default")
        assert {p["metadata"]["name"] for p in listed} == old
        assert all("deletionTimestamp" in p["metadata"] for p in listed)
        # Once they are gone (no ReplicaSet status changes then), the rollout goes on.
        assert objects.finish_terminating() == 3
        await settled(manager)
        images = {p["spec"]["containers"][0]["image"] for p in objects.list("Pod", "default")}
        assert images == {"busybox:1.37"}
        assert len(objects.list("Pod", "default")) == 3
    finally:
        await manager.stop()


async def test_a_rolling_update_counts_no_terminating_pod_as_available() -> None:
    objects = MemoryObjects()
    objects.graceful = True
    manager = started(objects)
    try:
        d = workload("Deployment", "web", 4)
        d["spec"]["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
        objects.create("Deployment", "default", d)
        await settled(manager)
        current = objects.get("Deployment", "default", "web")
        assert current is not None
        active = {p["metadata"]["name"] for p in objects.list("Pod", "default")}
        mark = len(objects.history)
        current["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:1.37"
        objects.update("Deployment", current)
        # The kubelet finishes each termination only once the controllers have settled.
        await settled(manager)
        while objects.finish_terminating():
            await settled(manager)
        # On every state: at most 4 + 1 pods that are not terminating, and never fewer than
        # 4 of them (a terminating pod is neither a replica nor available).
        for change, kind, doc in objects.history[mark:]:
            if kind != "Pod":
                continue
            name = doc["metadata"]["name"]
            if change == "ADDED":
                active.add(name)
            elif change == "DELETED" or "deletionTimestamp" in doc["metadata"]:
                active.discard(name)
            assert 4 <= len(active) <= 5, active
        pods = objects.list("Pod", "default")
        assert {p["metadata"]["name"] for p in pods} == active
        assert len(pods) == 4
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"busybox:1.37"}
    finally:
        await manager.stop()


async def test_the_deployments_annotations_reach_its_replica_sets() -> None:
    """`rollout history` reads a revision's change-cause from its ReplicaSet: given at creation,
    or annotated on the Deployment after its rollout (copied on the next sync)."""
    objects = MemoryObjects()
    manager = started(objects)
    cause = "kubernetes.io/change-cause"
    try:
        d = workload("Deployment", "web", 1)
        d["metadata"]["annotations"] = {cause: "create"}
        objects.create("Deployment", "default", d)
        await settled(manager)
        (first,) = objects.list("ReplicaSet", "default")
        assert first["metadata"]["annotations"][cause] == "create"
        current = objects.get("Deployment", "default", "web")
        assert current is not None
        current["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:1.37"
        objects.update("Deployment", current)
        await settled(manager)
        current = objects.get("Deployment", "default", "web")
        assert current is not None
        current["metadata"]["annotations"][cause] = "image 1.37"
        objects.update("Deployment", current)
        await settled(manager)
        causes = {
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs["metadata"][
                "annotations"
            ][cause]
            for rs in objects.list("ReplicaSet", "default")
        }
        assert causes == {"1": "create", "2": "image 1.37"}
    finally:
        await manager.stop()
