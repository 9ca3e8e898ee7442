"""The ReplicaSet controller: keep `spec.replicas` pods of the template running, report status.

One sync reads the ReplicaSet and the pods it controls (ownerReferences with `controller:
true` naming its UID), creates the missing pods or deletes the surplus, and writes the status
(`replicas`, `fullyLabeledReplicas`, `readyReplicas`, `availableReplicas`,
`observedGeneration`) only when it changed, so a sync that finds nothing to do writes nothing
and wakes nobody. Which pods go first is `controller.ActivePods`' ranking: not ready before
ready, pending before running, more restarts first, the newest first. The store answers
synchronously, so the expectations Kubernetes keeps for its lagging informer cache are not
needed: a pod created is listed by the next sync.

Not done: adopting orphan pods that match the selector, and releasing owned pods that stopped
matching it (both need ownerReference writes on pods, which the daemon does not accept).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Callable, Mapping
from typing import Any

from kubesim_images.workloads.objects import (
    SAFE_ALPHABET,
    Obj,
    Objects,
    ObjectsError,
    controller_ref,
    controller_uid,
    is_active,
    is_available,
    ready_since,
    selector_matches,
)

COMPONENT = "replicaset-controller"
# `burstReplicas`: at most this many creations or deletions per sync, so one sync of a huge
# ReplicaSet cannot hold the event loop; the next sync continues.
BURST_REPLICAS = 500
YIELD_EVERY = 50  # pod creations between two yields to the event loop
GENERATED_SUFFIX = 5  # `names.SimpleNameGenerator`: generateName plus five random characters


def replicas_of(doc: Mapping[str, Any]) -> int:
    value = (doc.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _rank(pod: Mapping[str, Any]) -> tuple[int, int, int, str]:
    """Lower ranks are deleted first (`controller.ActivePods` Less, simplified)."""
    status = pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", ""), 0)
    ready = 0 if ready_since(pod) is None else 1
    restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
    created = pod["metadata"].get("creationTimestamp") or ""
    # Newer pods go first: invert the timestamp's order by sorting on its complement below.
    return (ready, phase_rank, -restarts, _newest_first(created))


def _newest_first(stamp: str) -> str:
    return "".join(chr(0x10FFFF - ord(c)) for c in stamp)


class ReplicaSetController:
    def __init__(
        self, objects: Objects, *, rng: random.Random, now: Callable[[], dt.datetime]
    ) -> None:
        self._objects = objects
        self._rng = rng
        self._now = now

    def owned_pods(self, rs: Mapping[str, Any]) -> list[Obj]:
        uid = rs["metadata"]["uid"]
        return [
            p
            for p in self._objects.list("Pod", rs["metadata"]["namespace"])
            if controller_uid(p) == uid
        ]

    async def sync(self, namespace: str, name: str) -> float | None:
        """Reconcile one ReplicaSet; returns seconds after which to look again (a pod that
        will become available once minReadySeconds pass), else None."""
        rs = self._objects.get("ReplicaSet", namespace, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return None
        active = [p for p in self.owned_pods(rs) if is_active(p)]
        diff = len(active) - replicas_of(rs)
        if diff < 0:
            taken = {p["metadata"]["name"] for p in self._objects.list("Pod", namespace)}
            for i in range(min(-diff, BURST_REPLICAS)):
                taken.add(self._create_pod(rs, taken))
                if i % YIELD_EVERY == YIELD_EVERY - 1:
                    await asyncio.sleep(0)  # a big scale-up lets requests in between
        elif diff > 0:
            for pod in sorted(active, key=_rank)[: min(diff, BURST_REPLICAS)]:
                meta = pod["metadata"]
                await self._objects.delete("Pod", namespace, meta["name"], meta["uid"])
                self._objects.event(
                    rs, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}", COMPONENT
                )
        if diff == 0:
            return self._update_status(rs, active)
        rs = self._objects.get("ReplicaSet", namespace, name)
        if rs is None:  # deleted while we awaited a pod's deletion
            return None
        return self._update_status(rs, [p for p in self.owned_pods(rs) if is_active(p)])

    def _create_pod(self, rs: Obj, taken: set[str]) -> str:
        meta = rs["metadata"]
        template = (rs.get("spec") or {}).get("template") or {}
        tmeta = template.get("metadata") or {}
        prefix = f"{meta['name']}-"
        name = prefix + self._suffix()
        while name in taken:
            name = prefix + self._suffix()
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "generateName": prefix,
                "namespace": meta["namespace"],
                "labels": dict(tmeta.get("labels") or {}),
                "ownerReferences": [controller_ref(rs)],
            },
            "spec": template.get("spec") or {},
        }
        if tmeta.get("annotations"):
            body["metadata"]["annotations"] = dict(tmeta["annotations"])
        try:
            self._objects.create("Pod", meta["namespace"], body)
        except ObjectsError as exc:
            # The replicaset controller's pod control: a Warning, unless the namespace is
            # being terminated (then the refusal is expected and the namespace goes anyway).
            if not exc.namespace_terminating:
                self._objects.event(
                    rs, "Warning", "FailedCreate", f"Error creating: {exc}", COMPONENT
                )
            raise
        self._objects.event(rs, "Normal", "SuccessfulCreate", f"Created pod: {name}", COMPONENT)
        return name

    def _suffix(self) -> str:
        return "".join(self._rng.choice(SAFE_ALPHABET) for _ in range(GENERATED_SUFFIX))

    def _update_status(self, rs: Obj, active: list[Obj]) -> float | None:
        spec = rs.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        now = self._now()
        ready = [p for p in active if ready_since(p) is not None]
        available = [p for p in ready if is_available(p, min_ready, now)]
        labelled = [
            p
            for p in active
            if all(
                (p["metadata"].get("labels") or {}).get(k) == v for k, v in template_labels.items()
            )
        ]
        status: Obj = {
            "replicas": len(active),
            "fullyLabeledReplicas": len(labelled),
            "readyReplicas": len(ready),
            "availableReplicas": len(available),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        # Zero counts are omitted, as the apiserver's JSON (omitempty) shows them.
        status = {k: v for k, v in status.items() if v or k == "replicas"}
        if status != (rs.get("status") or {}):
            self._objects.update_status("ReplicaSet", {**rs, "status": status})
        waiting = [since for p in ready if p not in available if (since := ready_since(p))]
        if not waiting:
            return None
        soonest = min(waiting) + dt.timedelta(seconds=min_ready)
        return max(0.0, (soonest - now).total_seconds())


def matches_template(rs: Mapping[str, Any]) -> bool:
    """Validation's rule: the selector must match the template's labels."""
    spec = rs.get("spec") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    return selector_matches(spec.get("selector"), labels)
