"""The official `kubernetes` Python client against the daemon: model objects in, model objects
out, field selectors, the node's images, dockerconfigjson secrets and ApiException statuses.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import threading

import pytest
from conftest import (
    MISSING_IMAGE,
    NODE,
    PRIVATE_IMAGE,
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    RunningDaemon,
    poll,
)
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from urllib3.exceptions import ProtocolError

pytestmark = pytest.mark.integration
NS = "default"


def pod(name: str, image: str, **spec: object) -> client.V1Pod:
    return client.V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=client.V1ObjectMeta(name=name, labels={"suite": "client"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image=image)], **spec),
    )


def waiting_reason(core: client.CoreV1Api, name: str) -> str | None:
    statuses = core.read_namespaced_pod(name, NS).status.container_statuses or []
    waiting = statuses[0].state.waiting if statuses else None
    return waiting.reason if waiting else None


def test_pod_lifecycle_with_models(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_pod(NS, pod("web", "nginx:1.27"))
    assert isinstance(created, client.V1Pod)
    assert created.metadata.uid
    assert created.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert created.spec.node_name == NODE

    def running() -> client.V1Pod | None:
        current = core.read_namespaced_pod("web", NS)
        state = current.status.container_statuses[0].state
        return current if state.running is not None else None

    current = poll(running, timeout=10, what="web running")
    status = current.status.container_statuses[0]
    assert status.ready is True
    assert status.state.waiting is None
    assert status.state.running.started_at is not None
    assert status.image_id.startswith("docker.io/library/nginx@sha256:")
    assert current.status.phase == "Running"
    assert current.metadata.uid == created.metadata.uid

    listed = core.list_namespaced_pod(NS, label_selector="suite=client")
    assert [p.metadata.name for p in listed.items] == ["web"]
    assert core.list_namespaced_pod(NS, field_selector="status.phase=Running").items

    nodes = core.list_node().items
    assert [n.metadata.name for n in nodes] == [NODE]
    names = {name for image in nodes[0].status.images for name in image.names}
    assert "docker.io/library/nginx:1.27" in names
    assert all(image.size_bytes > 0 for image in nodes[0].status.images)

    deleted = core.delete_namespaced_pod("web", NS)
    assert deleted.metadata.name == "web"
    with pytest.raises(ApiException) as excinfo:
        core.read_namespaced_pod("web", NS)
    assert excinfo.value.status == 404
    assert core.list_namespaced_pod(NS).items == []


def test_missing_image_waiting_reasons_and_events(
    core: client.CoreV1Api, daemon: RunningDaemon
) -> None:
    # The client's watch sees every status change (a poll can miss a state lasting one sync);
    # the pod is created once the daemon holds the watch open.
    reasons: queue.Queue[str | None] = queue.Queue()
    watcher = watch.Watch()

    def stream() -> None:
        events = watcher.stream(
            core.list_namespaced_pod, NS, field_selector="metadata.name=ghost", timeout_seconds=60
        )
        # The daemon's stop at teardown ends a stream still open: that is not this test's concern.
        with contextlib.suppress(ProtocolError):
            for event in events:
                statuses = event["object"].status.container_statuses or []
                waiting = statuses[0].state.waiting if statuses else None
                reasons.put(waiting.reason if waiting else None)

    before = daemon.open_watches()
    reader = threading.Thread(target=stream, daemon=True)
    reader.start()
    poll(lambda: daemon.open_watches() > before, timeout=60, what="the client watch open")
    core.create_namespaced_pod(NS, pod("ghost", MISSING_IMAGE))
    seen: list[str | None] = []
    while not seen or seen[-1] != "ImagePullBackOff":
        reason = reasons.get(timeout=30)  # bounds a hang only: no change can be missed
        if not seen or seen[-1] != reason:
            seen.append(reason)
    watcher.stop()
    assert "ErrImagePull" in seen, seen
    assert seen.index("ErrImagePull") < seen.index("ImagePullBackOff"), seen

    def events_of(selector: str) -> list[client.CoreV1Event]:
        return core.list_namespaced_event(NS, field_selector=selector).items

    def all_reasons() -> list[client.CoreV1Event] | None:
        events = events_of("involvedObject.name=ghost")
        return events if {"Pulling", "Failed", "BackOff"} <= {e.reason for e in events} else None

    by_pod = poll(all_reasons, timeout=10, what="Pulling, Failed and BackOff events")
    assert all(e.involved_object.kind == "Pod" for e in by_pod)
    # The kubelet's container events name the container; the scheduler's is about the pod.
    kubelets = [e for e in by_pod if e.reason != "Scheduled"]
    assert all(e.involved_object.field_path == "spec.containers{app}" for e in kubelets)
    (scheduled,) = [e for e in by_pod if e.reason == "Scheduled"]
    assert scheduled.involved_object.field_path is None
    failed = [e for e in by_pod if e.message.startswith(f'Failed to pull image "{MISSING_IMAGE}"')]
    assert failed
    assert failed[0].type == "Warning"
    warnings = events_of("involvedObject.name=ghost,type=Warning")
    assert warnings
    assert {e.type for e in warnings} == {"Warning"}
    backoff = poll(
        lambda: [e for e in events_of("reason=BackOff") if e.count >= 2],
        timeout=10,
        what="an aggregated BackOff event",
    )
    assert backoff[0].message == f'Back-off pulling image "{MISSING_IMAGE}"'
    assert backoff[0].last_timestamp > backoff[0].first_timestamp
    assert events_of("involvedObject.name=someone-else") == []


def test_dockerconfigjson_secret_lets_the_pod_pull(core: client.CoreV1Api) -> None:
    auth = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    config = {"auths": {"registry.example.com": {"auth": auth}}}
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name="regcred"),
        type="kubernetes.io/dockerconfigjson",
        data={".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    )
    created = core.create_namespaced_secret(NS, secret)
    assert created.type == "kubernetes.io/dockerconfigjson"
    assert set(created.data) == {".dockerconfigjson"}

    core.create_namespaced_pod(
        NS,
        pod(
            "robot",
            PRIVATE_IMAGE,
            image_pull_secrets=[client.V1LocalObjectReference(name="regcred")],
        ),
    )
    anonymous = pod("anonymous", PRIVATE_IMAGE)
    anonymous.spec.containers[0].image_pull_policy = "Always"  # never served from the node
    core.create_namespaced_pod(NS, anonymous)
    poll(
        lambda: core.read_namespaced_pod("robot", NS).status.phase == "Running",
        timeout=10,
        what="robot Running",
    )
    reason = poll(
        lambda: waiting_reason(core, "anonymous") in {"ErrImagePull", "ImagePullBackOff"},
        timeout=10,
        what="anonymous failing to pull",
    )
    assert reason
    failed = core.list_namespaced_event(
        NS, field_selector="involvedObject.name=anonymous,reason=Failed"
    )
    assert any("authorization failed" in e.message for e in failed.items)
    secrets = core.list_namespaced_secret(NS, field_selector="type=kubernetes.io/dockerconfigjson")
    assert [s.metadata.name for s in secrets.items] == ["regcred"]


def test_api_exceptions_carry_kubernetes_statuses(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("nope", NS)
    assert missing.value.status == 404
    body = json.loads(missing.value.body)
    assert body["kind"] == "Status"
    assert body["reason"] == "NotFound"
    assert body["message"] == 'pods "nope" not found'

    core.create_namespaced_pod(NS, pod("dup", "busybox:1.36"))
    with pytest.raises(ApiException) as duplicate:
        core.create_namespaced_pod(NS, pod("dup", "busybox:1.36"))
    assert duplicate.value.status == 409
    assert json.loads(duplicate.value.body)["reason"] == "AlreadyExists"

    empty = client.V1Pod(
        metadata=client.V1ObjectMeta(name="empty"), spec=client.V1PodSpec(containers=[])
    )
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_pod(NS, empty)
    assert invalid.value.status == 422
    body = json.loads(invalid.value.body)
    assert body["reason"] == "Invalid"
    assert body["message"].startswith('Pod "empty" is invalid')
    assert {c["field"] for c in body["details"]["causes"]} == {"spec.containers"}

    bad_secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name="broken"),
        type="kubernetes.io/dockerconfigjson",
        data={".dockerconfigjson": base64.b64encode(b"not json").decode()},
    )
    with pytest.raises(ApiException) as bad:
        core.create_namespaced_secret(NS, bad_secret)
    assert bad.value.status == 422

    with pytest.raises(ApiException) as gone:
        core.delete_namespaced_pod("nope", NS)
    assert gone.value.status == 404

    with pytest.raises(ApiException) as no_account:
        core.create_namespaced_pod(NS, pod("orphan", "busybox:1.36", service_account_name="ghost"))
    assert no_account.value.status == 403
