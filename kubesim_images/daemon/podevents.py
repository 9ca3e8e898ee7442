"""The events of a pod's life a user sees on a real cluster beyond the image manager's.

- the scheduler's `Scheduled` when a pod is bound (`Successfully assigned NS/NAME to NODE`): at
  its creation, or later for a pod that was pending,
- the kubelet's `Created` (`Created container: NAME`) and `Started` (`Started container NAME`)
  each time a container starts, init containers included,
- the kubelet's Warning `FailedToRetrieveImagePullSecret` at each sync of a pod naming pull
  secrets that do not exist (`Unable to retrieve some image pull secrets (a, b); attempting to
  pull the image may not succeed.`).

Daemon only: the shared engine records image events alone, so scenario outputs do not change.
Container starts are read from the pods' changes on the feed (a start is a new `startedAt` or
restart count), which keeps the pod workers unaware of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubesim_images.clock import WallClock
from kubesim_images.daemon.changefeed import DELETED, Change, ChangeFeed
from kubesim_images.daemon.eventstore import EventStore
from kubesim_images.daemon.objects import ObjectTable
from kubesim_images.events import Event
from kubesim_images.podworkers import PodStatus
from kubesim_images.reasons import EventType, Reason

SCHEDULER = "default-scheduler"
_STATUS_FIELDS = (("initContainers", "initContainerStatuses"), ("containers", "containerStatuses"))

# A container start: (spec list, name, restart count, startedAt).
_Start = tuple[str, str, int, str]


def _starts(pod: Mapping[str, Any]) -> set[_Start]:
    status = pod.get("status") or {}
    out: set[_Start] = set()
    for spec_field, status_field in _STATUS_FIELDS:
        for cs in status.get(status_field) or []:
            state = cs.get("state") or {}
            started = (state.get("running") or state.get("terminated") or {}).get("startedAt")
            if started:
                out.add((spec_field, cs["name"], int(cs.get("restartCount") or 0), started))
    return out


class PodEvents:
    def __init__(
        self, feed: ChangeFeed, events: EventStore, clock: WallClock, secrets: ObjectTable
    ) -> None:
        self._events = events
        self._clock = clock
        self._secrets = secrets
        self._seen: dict[str, set[_Start]] = {}
        self._bound: set[str] = set()  # the pods whose binding was reported
        self._unsubscribe = feed.subscribe("Pod", self._changed)

    def restore(self, pods: Iterable[Mapping[str, Any]]) -> None:
        """The starts of the restored pods happened before: not reported again."""
        for pod in pods:
            self._seen[pod["metadata"]["uid"]] = _starts(pod)
            if (pod.get("spec") or {}).get("nodeName"):
                self._bound.add(pod["metadata"]["uid"])

    def stop(self) -> None:
        self._unsubscribe()

    def _event(
        self,
        pod: Mapping[str, Any],
        node: str,
        field_path: str,
        kind: EventType,
        reason: Reason,
        text: str,
        source: str = "kubelet",
    ) -> Event:
        meta = pod["metadata"]
        return Event(
            self._clock.now_ns(),
            node,
            meta["namespace"],
            meta["name"],
            meta["uid"],
            field_path,
            kind,
            reason,
            text,
            source=source,
        )

    def _changed(self, change: Change) -> None:
        pod = change.object
        meta = pod["metadata"]
        uid = meta["uid"]
        if change.type == DELETED:
            self._seen.pop(uid, None)
            self._bound.discard(uid)
            return
        node = (pod.get("spec") or {}).get("nodeName") or ""
        if node and uid not in self._bound:  # one no node takes gets FailedScheduling instead
            self._bound.add(uid)
            message = f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}"
            self._events.emit(
                self._event(pod, "", "", EventType.NORMAL, Reason.SCHEDULED, message, SCHEDULER)
            )
        starts = _starts(pod)
        seen = self._seen.setdefault(uid, set())
        for spec_field, name, _restarts, _started in sorted(starts - seen):
            path = f"spec.{spec_field}{{{name}}}"
            for reason, text in (
                (Reason.CREATED, f"Created container: {name}"),
                (Reason.STARTED, f"Started container {name}"),
            ):
                self._events.emit(self._event(pod, node, path, EventType.NORMAL, reason, text))
        seen |= starts

    def synced(self, status: PodStatus) -> None:
        """A sync began: the kubelet's getPullSecretsForPod warns of the secrets it lacks."""
        pod = status.pod
        missing = [
            name for name in pod.image_pull_secrets if (pod.namespace, name) not in self._secrets
        ]
        if missing:
            self._events.emit(
                Event(
                    self._clock.now_ns(),
                    status.node,
                    pod.namespace,
                    pod.name,
                    pod.uid,
                    "",
                    EventType.WARNING,
                    Reason.FAILED_TO_RETRIEVE_IMAGE_PULL_SECRET,
                    f"Unable to retrieve some image pull secrets ({', '.join(missing)}); "
                    "attempting to pull the image may not succeed.",
                )
            )
