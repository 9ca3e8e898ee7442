"""The persistence codec: the daemon's in-memory state as the JSON the state store keeps.

A pod's status and an image record are saved as plain JSON with wall-clock epochs (loop times
mean nothing after a restart) and read back into loop time, so a daemon restarted, even after
`kill -9`, resumes each sync where it was. The store decides nothing here: it keeps documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubesim_images.clock import WallClock
from kubesim_images.pod import Container, Pod
from kubesim_images.podworkers import ContainerStatus, PodStatus, State
from kubesim_images.store import ImageRecord, Layer


def status_json(status: PodStatus, clock: WallClock) -> dict[str, Any]:
    def container(cs: ContainerStatus) -> dict[str, Any]:
        return {
            "name": cs.container.name,
            "state": cs.state.value,
            "reason": cs.reason,
            "message": cs.message,
            "imageID": cs.image_id,
            "pullAttempts": cs.pull_attempts,
            "startedAt": None if cs.started_at is None else clock.epoch(cs.started_at),
            "restarts": cs.restarts,
        }

    return {
        "createdAt": clock.epoch(status.created_at),
        "imagesReadyAt": None
        if status.images_ready_at is None
        else clock.epoch(status.images_ready_at),
        "containers": [container(cs) for cs in status.all_statuses()],
    }


def status_from_json(
    pod: Pod, doc: Mapping[str, Any] | None, clock: WallClock, node: str
) -> PodStatus:
    """The saved status of `pod`, or with `doc` None the status of a pod just created."""
    created = clock.loop_time(doc["createdAt"]) if doc else clock.now_ns()
    reason = "PodInitializing" if pod.init_containers else "ContainerCreating"
    saved = {c["name"]: c for c in (doc or {}).get("containers", [])}

    def container(c: Container) -> ContainerStatus:
        cs = ContainerStatus(c, reason=reason)
        old = saved.get(c.name)
        if old is not None:
            cs.state = State(old["state"])
            cs.reason, cs.message = old["reason"], old["message"]
            cs.image_id, cs.pull_attempts = old["imageID"], old["pullAttempts"]
            if old["startedAt"] is not None:
                cs.started_at = clock.loop_time(old["startedAt"])
            cs.restarts = old.get("restarts", 0)
        return cs

    ready = (doc or {}).get("imagesReadyAt")
    return PodStatus(
        pod=pod,
        node=node,
        created_at=created,
        init_statuses=[container(c) for c in pod.init_containers],
        statuses=[container(c) for c in pod.containers],
        images_ready_at=None if ready is None else clock.loop_time(ready),
    )


def image_json(record: ImageRecord, clock: WallClock) -> dict[str, Any]:
    return {
        "id": record.id,
        "layers": [[layer.digest, layer.size] for layer in record.layers],
        "repoTags": record.repo_tags,
        "repoDigests": record.repo_digests,
        "lastUsed": clock.epoch(record.last_used),
    }


def image_from_json(doc: Mapping[str, Any]) -> ImageRecord:
    return ImageRecord(
        id=doc["id"],
        layers=tuple(Layer(d, s) for d, s in doc["layers"]),
        repo_tags=list(doc["repoTags"]),
        repo_digests=list(doc["repoDigests"]),
    )
