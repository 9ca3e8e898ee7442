"""The Deployment controller: revisions as ReplicaSets, RollingUpdate and Recreate, status.

A sync follows pkg/controller/deployment: find the ReplicaSets the Deployment controls, the
new one being the one whose template equals the Deployment's (pod-template-hash aside), the
others old; create the new one when there is none (named `<deployment>-<hash>`, revision one
above the highest old one, so a rollback makes an old set new again with the next revision);
then RollingUpdate grows the new set within `maxSurge` and shrinks old sets within
`maxUnavailable` (the arithmetic is in `rollout.py`), or Recreate scales every old set to zero,
waits for their pods to be gone and then scales the new one up. Status (`observedGeneration`,
`replicas`, `updatedReplicas`, `readyReplicas`, `availableReplicas`, `unavailableReplicas`)
and the `Available` / `Progressing` conditions carry the apiserver's reasons and messages,
which is what `kubectl rollout status` reads. Old sets beyond `revisionHistoryLimit` are
deleted once the rollout is complete. Each step writes only what changed, so the controller
settles instead of looping on its own updates.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubesim_images.logging import get_logger
from kubesim_images.workloads import rollout
from kubesim_images.workloads.objects import (
    DESIRED_REPLICAS,
    LAST_APPLIED,
    MAX_REPLICAS,
    POD_TEMPLATE_HASH,
    REVISION,
    REVISION_HISTORY,
    Obj,
    Objects,
    controller_ref,
    controller_uid,
    equal_ignore_hash,
    revision,
    template_hash,
)
from kubesim_images.workloads.replicaset import replicas_of

COMPONENT = "deployment-controller"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
# Annotations of the Deployment that are not copied to its ReplicaSets (`skipCopyAnnotation`).
NOT_COPIED = frozenset(
    {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO}
)
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE = 600

# Condition reasons, as pkg/controller/deployment/util names them.
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
RS_UPDATED = "ReplicaSetUpdated"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

_log = get_logger()


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _creation_order(rs: Mapping[str, Any]) -> tuple[str, str]:
    meta = rs["metadata"]
    return (meta.get("creationTimestamp") or "", meta["name"])


def strategy_fenceposts(d: Mapping[str, Any]) -> rollout.Fenceposts:
    strategy = (d.get("spec") or {}).get("strategy") or {}
    replicas = replicas_of(d)
    if strategy.get("type") == "Recreate":
        return rollout.Fenceposts(0, 0)
    params = strategy.get("rollingUpdate") or {}
    return rollout.fenceposts(
        params.get("maxSurge", rollout.DEFAULT_MAX_SURGE),
        params.get("maxUnavailable", rollout.DEFAULT_MAX_UNAVAILABLE),
        replicas,
    )


def _available(rs: Mapping[str, Any]) -> int:
    return int((rs.get("status") or {}).get("availableReplicas") or 0)


def _status_replicas(rs: Mapping[str, Any]) -> int:
    return int((rs.get("status") or {}).get("replicas") or 0)


def deployment_complete(d: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    replicas = replicas_of(d)
    return bool(
        status.get("updatedReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
        and status.get("observedGeneration", 0) >= d["metadata"].get("generation", 1)
    )


def _condition(status: Mapping[str, Any], kind: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def _set_condition(status: Obj, cond: Obj) -> None:
    """`SetDeploymentCondition`: same status and reason changes nothing; the same status with
    another reason keeps its lastTransitionTime."""
    current = _condition(status, cond["type"])
    if current is not None and current["status"] == cond["status"]:
        if current.get("reason") == cond["reason"]:
            return
        cond["lastTransitionTime"] = current["lastTransitionTime"]
    others = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]]
    status["conditions"] = [*others, cond]


class DeploymentController:
    def __init__(self, objects: Objects, *, now: Callable[[], dt.datetime]) -> None:
        self._objects = objects
        self._now = now

    def _cond(self, kind: str, status: str, reason: str, message: str) -> Obj:
        stamp = _stamp(self._now())
        return {
            "type": kind,
            "status": status,
            "lastUpdateTime": stamp,
            "lastTransitionTime": stamp,
            "reason": reason,
            "message": message,
        }

    def owned_sets(self, d: Mapping[str, Any]) -> list[Obj]:
        uid = d["metadata"]["uid"]
        sets = self._objects.list("ReplicaSet", d["metadata"]["namespace"])
        return sorted((rs for rs in sets if controller_uid(rs) == uid), key=_creation_order)

    async def sync(self, namespace: str, name: str) -> float | None:
        """Reconcile one Deployment; returns seconds after which to look again (the progress
        deadline of a rollout that is not moving), else None."""
        d = self._objects.get("Deployment", namespace, name)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return None
        sets = self.owned_sets(d)
        spec = d.get("spec") or {}
        if spec.get("paused"):
            new, old = self._new_and_old(d, sets)
            return self._sync_status(d, new, old, paused=True)
        if ((spec.get("strategy") or {}).get("type")) == "Recreate":
            return await self._recreate(d, sets)
        return await self._rolling(d, sets)

    # -- revisions ----------------------------------------------------------------------------
    def _new_and_old(self, d: Obj, sets: Sequence[Obj]) -> tuple[Obj | None, list[Obj]]:
        template = (d.get("spec") or {}).get("template") or {}
        new = next(
            (
                rs
                for rs in sets
                if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template)
            ),
            None,
        )
        return new, [rs for rs in sets if rs is not new]

    def _ensure_new(self, d: Obj, sets: Sequence[Obj], replicas: int) -> tuple[Obj, Obj]:
        """`getNewReplicaSet` with create: the new set (made or found), its revision annotation
        raised past the old ones, and the Deployment's revision annotation following it."""
        new, old = self._new_and_old(d, sets)
        next_revision = max((revision(rs) for rs in old), default=0) + 1
        if new is not None:
            new = self._bump_revision(d, new, next_revision)
            d = self._follow_revision(d, new)
            if _condition(d.get("status") or {}, "Progressing") is None and self._has_deadline(d):
                status = copy.deepcopy(d.get("status") or {})
                message = f'Found new replica set "{new["metadata"]["name"]}"'
                _set_condition(status, self._cond("Progressing", "True", FOUND_NEW_RS, message))
                d = self._objects.update_status("Deployment", {**d, "status": status})
            return d, new
        return self._create_new(d, next_revision, replicas)

    def _create_new(self, d: Obj, next_revision: int, replicas: int) -> tuple[Obj, Obj]:
        meta, spec = d["metadata"], d.get("spec") or {}
        status = copy.deepcopy(d.get("status") or {})
        collisions = int(status.get("collisionCount") or 0)
        while True:
            template = copy.deepcopy(spec.get("template") or {})
            hashed = template_hash(template, collisions)
            tmeta = template.setdefault("metadata", {})
            tmeta["labels"] = {**(tmeta.get("labels") or {}), POD_TEMPLATE_HASH: hashed}
            selector = copy.deepcopy(spec.get("selector") or {})
            selector["matchLabels"] = {
                **(selector.get("matchLabels") or {}),
                POD_TEMPLATE_HASH: hashed,
            }
            rs_name = f"{meta['name']}-{hashed}"
            taken = self._objects.get("ReplicaSet", meta["namespace"], rs_name)
            if taken is None:
                break
            # Another template hashed to this name (or an object took it): count a collision
            # and hash again, as the controller does with status.collisionCount.
            collisions += 1
        annotations = {
            k: v for k, v in (meta.get("annotations") or {}).items() if k not in NOT_COPIED
        }
        post = strategy_fenceposts(d)
        annotations.update(
            {
                REVISION: str(next_revision),
                DESIRED_REPLICAS: str(replicas_of(d)),
                MAX_REPLICAS: str(replicas_of(d) + post.max_surge),
            }
        )
        body: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": meta["namespace"],
                "labels": dict(tmeta["labels"]),
                "annotations": annotations,
                "ownerReferences": [controller_ref(d)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                "selector": selector,
                "template": template,
            },
        }
        new = self._objects.create("ReplicaSet", meta["namespace"], body)
        if replicas > 0:
            self._scaled_event(d, new, 0, replicas)
        if collisions:
            status["collisionCount"] = collisions
        if self._has_deadline(d):
            message = f'Created new replica set "{rs_name}"'
            _set_condition(status, self._cond("Progressing", "True", NEW_RS_CREATED, message))
        d = self._follow_revision(d, new)
        if status != (d.get("status") or {}):
            d = self._objects.update_status("Deployment", {**d, "status": status})
        return d, new

    def _bump_revision(self, d: Obj, rs: Obj, next_revision: int) -> Obj:
        """`SetNewReplicaSetAnnotations` on an existing set: the Deployment's annotations copied
        onto it (added or changed, never removed: `kubectl annotate ... change-cause` after a
        rollout reaches the set `rollout history` reads), and a rollback to it gives it the
        next revision and remembers the one it had in revision-history."""
        annotations = dict(rs["metadata"].get("annotations") or {})
        annotations.update(
            (key, value)
            for key, value in (d["metadata"].get("annotations") or {}).items()
            if key not in NOT_COPIED
        )
        old = annotations.get(REVISION, "")
        if revision(rs) < next_revision:
            annotations[REVISION] = str(next_revision)
            if old:
                history = annotations.get(REVISION_HISTORY)
                annotations[REVISION_HISTORY] = f"{history},{old}" if history else old
        annotations.update(self._replica_annotations(d))
        if annotations == (rs["metadata"].get("annotations") or {}):
            return rs
        return self._objects.update(
            "ReplicaSet", {**rs, "metadata": {**rs["metadata"], "annotations": annotations}}
        )

    def _follow_revision(self, d: Obj, rs: Obj) -> Obj:
        wanted = (rs["metadata"].get("annotations") or {}).get(REVISION)
        annotations = dict(d["metadata"].get("annotations") or {})
        if wanted is None or annotations.get(REVISION) == wanted:
            return d
        annotations[REVISION] = wanted
        return self._objects.update(
            "Deployment", {**d, "metadata": {**d["metadata"], "annotations": annotations}}
        )

    def _replica_annotations(self, d: Mapping[str, Any]) -> dict[str, str]:
        replicas = replicas_of(d)
        return {
            DESIRED_REPLICAS: str(replicas),
            MAX_REPLICAS: str(replicas + strategy_fenceposts(d).max_surge),
        }

    # -- scaling ------------------------------------------------------------------------------
    def _scale(self, d: Obj, rs: Obj, replicas: int) -> tuple[bool, Obj]:
        """`scaleReplicaSetAndRecordEvent`: set the count and the replica annotations."""
        annotations = {**(rs["metadata"].get("annotations") or {}), **self._replica_annotations(d)}
        before = replicas_of(rs)
        if before == replicas and annotations == (rs["metadata"].get("annotations") or {}):
            return False, rs
        updated = self._objects.update(
            "ReplicaSet",
            {
                **rs,
                "metadata": {**rs["metadata"], "annotations": annotations},
                "spec": {**(rs.get("spec") or {}), "replicas": replicas},
            },
        )
        if before != replicas:
            self._scaled_event(d, rs, before, replicas)
        return before != replicas, updated

    def _scaled_event(self, d: Obj, rs: Obj, before: int, after: int) -> None:
        direction = "up" if after > before else "down"
        name = rs["metadata"]["name"]
        message = f"Scaled {direction} replica set {name} from {before} to {after}"
        self._objects.event(d, "Normal", "ScalingReplicaSet", message, COMPONENT)

    # -- strategies ---------------------------------------------------------------------------
    async def _rolling(self, d: Obj, sets: list[Obj]) -> float | None:
        replicas = replicas_of(d)
        post = strategy_fenceposts(d)
        new, old = self._new_and_old(d, sets)
        if new is None:
            first = rollout.new_rs_replicas(replicas, post, 0, [replicas_of(rs) for rs in old])
            d, new = self._ensure_new(d, sets, first)
            return self._sync_status(d, new, old)
        d, new = self._ensure_new(d, sets, replicas_of(new))
        # reconcileNewReplicaSet
        current = replicas_of(new)
        if current > replicas:
            wanted = replicas
        else:
            every = [replicas_of(rs) for rs in old] + [current]
            wanted = rollout.new_rs_replicas(replicas, post, current, every)
        scaled, new = self._scale(d, new, wanted)
        if scaled:
            return self._sync_status(d, new, old)
        # reconcileOldReplicaSets
        if sum(replicas_of(rs) for rs in old) > 0:
            every_spec = sum(replicas_of(rs) for rs in old) + replicas_of(new)
            budget = rollout.old_scale_down_budget(
                replicas, post, every_spec, replicas_of(new), _available(new)
            )
            if budget > 0:
                scaled_down = False
                views = [
                    rollout.OldSet(rs["metadata"]["name"], replicas_of(rs), _available(rs))
                    for rs in old
                ]
                plan = rollout.cleanup_unhealthy(views, budget)
                views = [
                    rollout.OldSet(v.name, plan.get(v.name, v.spec_replicas), v.available)
                    for v in views
                ]
                min_available = replicas - rollout.max_unavailable(post, replicas)
                total_available = sum(_available(rs) for rs in old) + _available(new)
                plan.update(rollout.scale_down_old(views, total_available, min_available))
                for i, rs in enumerate(old):
                    if rs["metadata"]["name"] in plan:
                        changed, old[i] = self._scale(d, rs, plan[rs["metadata"]["name"]])
                        scaled_down = scaled_down or changed
                if scaled_down:
                    return self._sync_status(d, new, old)
        if deployment_complete(d, d.get("status") or {}):
            await self._cleanup(d, old)
        return self._sync_status(d, new, old)

    async def _recreate(self, d: Obj, sets: list[Obj]) -> float | None:
        new, old = self._new_and_old(d, sets)
        scaled_down = False
        for i, rs in enumerate(old):
            if replicas_of(rs) > 0:
                changed, old[i] = self._scale(d, rs, 0)
                scaled_down = scaled_down or changed
        if scaled_down:
            return self._sync_status(d, new, old)
        old_uids = {rs["metadata"]["uid"] for rs in old}
        pods = self._objects.list("Pod", d["metadata"]["namespace"])
        if any(controller_uid(p) in old_uids for p in pods):
            return self._sync_status(d, new, old)  # wait until every old pod is gone
        d, new = self._ensure_new(d, sets, replicas_of(d))
        _, new = self._scale(d, new, replicas_of(d))
        if deployment_complete(d, d.get("status") or {}):
            await self._cleanup(d, old)
        return self._sync_status(d, new, old)

    async def _cleanup(self, d: Obj, old: Sequence[Obj]) -> None:
        """`cleanupDeployment`: keep at most revisionHistoryLimit old sets, oldest revisions
        deleted first, never one that still has pods."""
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        limit = DEFAULT_REVISION_HISTORY_LIMIT if limit is None else int(limit)
        alive = [rs for rs in old if not rs["metadata"].get("deletionTimestamp")]
        excess = len(alive) - limit
        for rs in sorted(alive, key=lambda r: (revision(r), *_creation_order(r)))[: max(0, excess)]:
            meta = rs["metadata"]
            status = rs.get("status") or {}
            if (
                _status_replicas(rs)
                or replicas_of(rs)
                or meta.get("generation", 1) > status.get("observedGeneration", 0)
            ):
                continue
            await self._objects.delete("ReplicaSet", meta["namespace"], meta["name"], meta["uid"])

    # -- status -------------------------------------------------------------------------------
    def _has_deadline(self, d: Mapping[str, Any]) -> bool:
        # A deadline of MaxInt32 means none (`HasProgressDeadline`).
        return self._deadline(d) != 2**31 - 1

    def _deadline(self, d: Mapping[str, Any]) -> int:
        value = (d.get("spec") or {}).get("progressDeadlineSeconds")
        return DEFAULT_PROGRESS_DEADLINE if value is None else int(value)

    def _sync_status(
        self, d: Obj, new: Obj | None, old: Sequence[Obj], *, paused: bool = False
    ) -> float | None:
        """`syncRolloutStatus`: counts from the sets, then the conditions; written when changed.
        Returns the seconds until the progress deadline passes, for a rollout still under way."""
        sets = [*old, *([new] if new is not None else [])]
        replicas = replicas_of(d)
        post = strategy_fenceposts(d)
        previous = d.get("status") or {}
        available = sum(_available(rs) for rs in sets)
        total_spec = sum(replicas_of(rs) for rs in sets)
        status: Obj = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": sum(_status_replicas(rs) for rs in sets),
            "updatedReplicas": _status_replicas(new) if new is not None else 0,
            "readyReplicas": sum(
                int((rs.get("status") or {}).get("readyReplicas") or 0) for rs in sets
            ),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total_spec - available),
            "conditions": copy.deepcopy(previous.get("conditions") or []),
        }
        if previous.get("collisionCount"):
            status["collisionCount"] = previous["collisionCount"]
        if available >= replicas - rollout.max_unavailable(post, replicas):
            cond = self._cond(
                "Available", "True", MIN_AVAILABLE, "Deployment has minimum availability."
            )
        else:
            cond = self._cond(
                "Available",
                "False",
                MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.",
            )
        _set_condition(status, cond)
        requeue = self._progressing(d, new, previous, status, paused=paused)
        shown = {k: v for k, v in status.items() if v or k in {"observedGeneration", "conditions"}}
        if shown != previous:
            self._objects.update_status("Deployment", {**d, "status": shown})
        return requeue

    def _progressing(
        self, d: Obj, new: Obj | None, previous: Mapping[str, Any], status: Obj, *, paused: bool
    ) -> float | None:
        if not self._has_deadline(d):
            status["conditions"] = [c for c in status["conditions"] if c["type"] != "Progressing"]
            return None
        current = _condition(previous, "Progressing")
        if paused:
            if current is None or current.get("reason") != PAUSED:
                _set_condition(
                    status, self._cond("Progressing", "False", PAUSED, "Deployment is paused")
                )
            return None
        if current is not None and current.get("reason") == PAUSED:
            _set_condition(
                status, self._cond("Progressing", "True", RESUMED, "Deployment is resumed")
            )
            current = _condition(status, "Progressing")
        complete = (
            status["replicas"] == status["updatedReplicas"]
            and current is not None
            and current.get("reason") == NEW_RS_AVAILABLE
        )
        if complete:
            return None
        subject = (
            f'ReplicaSet "{new["metadata"]["name"]}"'
            if new is not None
            else f'Deployment "{d["metadata"]["name"]}"'
        )
        if deployment_complete(d, status):
            message = f"{subject} has successfully progressed."
            _set_condition(status, self._cond("Progressing", "True", NEW_RS_AVAILABLE, message))
            return None
        if self._moving(previous, status):
            cond = self._cond("Progressing", "True", RS_UPDATED, f"{subject} is progressing.")
            if current is not None and current["status"] == "True":
                cond["lastTransitionTime"] = current["lastTransitionTime"]
            status["conditions"] = [c for c in status["conditions"] if c["type"] != "Progressing"]
            status["conditions"].append(cond)
            return float(self._deadline(d))
        if current is None:
            return None
        if current.get("reason") == TIMED_OUT:
            return None
        since = dt.datetime.fromisoformat(current["lastUpdateTime"])
        left = (since + dt.timedelta(seconds=self._deadline(d)) - self._now()).total_seconds()
        if left < 0:
            message = f"{subject} has timed out progressing."
            _set_condition(status, self._cond("Progressing", "False", TIMED_OUT, message))
            return None
        return left + 1  # look again just after the deadline

    @staticmethod
    def _moving(previous: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
        """`DeploymentProgressing`: more updated, fewer old, more ready or more available."""

        def count(doc: Mapping[str, Any], key: str) -> int:
            return int(doc.get(key) or 0)

        old_before = count(previous, "replicas") - count(previous, "updatedReplicas")
        old_now = count(status, "replicas") - count(status, "updatedReplicas")
        return (
            count(status, "updatedReplicas") > count(previous, "updatedReplicas")
            or old_now < old_before
            or count(status, "readyReplicas") > count(previous, "readyReplicas")
            or count(status, "availableReplicas") > count(previous, "availableReplicas")
        )
