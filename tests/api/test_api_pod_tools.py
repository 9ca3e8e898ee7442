"""A pod's subresources beyond the object: logs, exec, attach, port-forward, and an eviction's
options (eviction itself is tested with the node updates).

Logs answer the kubelet's texts for a container that has none (an image simulator's users read
`is waiting to start: trying and failing to pull image`); exec and friends are a 400 saying the
simulation runs no processes, never a generic 404.
"""

from __future__ import annotations

from typing import Any

import pytest
from apikit import (
    PODS,
    PROTOBUF,
    Client,
    PodWatch,
    assert_status,
    create_pod,
    pb_field,
    pod_manifest,
)

from kubesim_images.daemon.kube import ApiError
from kubesim_images.daemon.podtools import check_log_status, pick_container
from kubesim_images.daemon.protobuf import MAGIC, decode

MISSING = "registry.example.com/team/missing:v1"


def protobuf_delete_options(grace: int, uid: str) -> bytes:
    """DeleteOptions as client-go's protobuf serializer writes it (runtime.Unknown envelope)."""
    type_meta = pb_field(1, b"v1") + pb_field(2, b"DeleteOptions")
    options = pb_field(1, grace) + pb_field(2, pb_field(1, uid.encode()))
    return MAGIC + pb_field(1, type_meta) + pb_field(2, options)


async def _running(client: Client, name: str) -> None:
    async with PodWatch(client, name) as watch:
        await create_pod(client, pod_manifest(name, "busybox:1.36"))
        await watch.until(lambda pod: pod.get("status", {}).get("phase") == "Running")


class TestEvictionOptions:
    """An Eviction's deleteOptions apply as a DELETE's (drain itself: test_api_node_updates)."""

    async def test_preconditions_and_dry_run(self, client: Client) -> None:
        await create_pod(client, pod_manifest("web", "busybox:1.36"))
        body: dict[str, Any] = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "web"},
            "deleteOptions": {"preconditions": {"uid": "other"}},
        }
        resp = await client.post(f"{PODS}/web/eviction", json=body)
        assert resp.status == 409
        assert_status(await resp.json(), 409, "Conflict", message_contains="Precondition failed")
        body["deleteOptions"] = {"dryRun": ["All"]}
        resp = await client.post(f"{PODS}/web/eviction", json=body)
        assert resp.status == 201
        resp = await client.get(f"{PODS}/web")
        assert "deletionTimestamp" not in (await resp.json())["metadata"]


class TestProtobufDeleteOptions:
    """A typed client's DELETE (`kubectl drain --disable-eviction`) sends protobuf options."""

    def test_decoded_with_grace_period_zero_and_preconditions(self) -> None:
        doc = decode(protobuf_delete_options(0, "u-1"))
        assert doc["kind"] == "DeleteOptions"
        assert doc["gracePeriodSeconds"] == 0
        assert doc["preconditions"] == {"uid": "u-1"}

    async def test_a_delete_honours_them(self, client: Client) -> None:
        created = await create_pod(client, pod_manifest("web", "busybox:1.36"))
        resp = await client.delete(
            f"{PODS}/web",
            data=protobuf_delete_options(0, "wrong"),
            headers={"Content-Type": PROTOBUF},
        )
        assert resp.status == 409
        resp = await client.delete(
            f"{PODS}/web",
            data=protobuf_delete_options(0, created["metadata"]["uid"]),
            headers={"Content-Type": PROTOBUF},
        )
        assert resp.status == 200
        assert (await client.get(f"{PODS}/web")).status == 404  # grace 0: removed at once


def _pod(state: dict[str, Any], last: dict[str, Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"name": "c", "state": state}
    if last is not None:
        status["lastState"] = last
    return {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c"}], "nodeName": "n"},
        "status": {"containerStatuses": [status]},
    }


class TestLogTexts:
    """The kubelet's validateContainerLogStatus, text for text."""

    @pytest.mark.parametrize(
        ("reason", "text"),
        [
            ("ErrImagePull", "image can't be pulled"),
            ("ImagePullBackOff", "trying and failing to pull image"),
            ("ContainerCreating", "ContainerCreating"),
            ("ErrImageNeverPull", "ErrImageNeverPull"),
        ],
    )
    def test_waiting(self, reason: str, text: str) -> None:
        with pytest.raises(ApiError) as caught:
            check_log_status(_pod({"waiting": {"reason": reason}}), "c", previous=False)
        assert caught.value.code == 400
        assert caught.value.message == f'container "c" in pod "p" is waiting to start: {text}'

    def test_running_has_logs_and_no_previous(self) -> None:
        pod = _pod({"running": {}})
        check_log_status(pod, "c", previous=False)
        with pytest.raises(ApiError) as caught:
            check_log_status(pod, "c", previous=True)
        assert caught.value.message == 'previous terminated container "c" in pod "p" not found'

    def test_terminated_without_a_container(self) -> None:
        with pytest.raises(ApiError) as caught:
            check_log_status(_pod({"terminated": {"exitCode": 1}}), "c", previous=False)
        assert caught.value.message == 'container "c" in pod "p" is terminated'

    def test_no_status_yet(self) -> None:
        pod = _pod({})
        pod["status"] = {}
        with pytest.raises(ApiError) as caught:
            check_log_status(pod, "c", previous=False)
        assert caught.value.message == 'container "c" in pod "p" is not available'

    def test_container_choice(self) -> None:
        pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
        with pytest.raises(ApiError) as caught:
            pick_container(pod, None)
        assert caught.value.message == (
            "a container name must be specified for pod p, choose one of: [a b]"
        )
        with pytest.raises(ApiError) as caught:
            pick_container(pod, "z")
        assert caught.value.message == "container z is not valid for pod p"
        assert pick_container(pod, "b") == "b"


class TestLogs:
    async def test_a_running_container_has_an_empty_log(self, client: Client) -> None:
        await _running(client, "web")
        resp = await client.get(f"{PODS}/web/log")
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert await resp.read() == b""

    async def test_a_pod_failing_to_pull_says_so(self, client: Client) -> None:
        async with PodWatch(client, "ipb") as watch:
            await create_pod(client, pod_manifest("ipb", MISSING))
            await watch.reasons_until("containerStatuses", "ImagePullBackOff")
        resp = await client.get(f"{PODS}/ipb/log", params={"container": "c0"})
        assert resp.status == 400
        assert_status(await resp.json(), 400, "BadRequest")
        body = await resp.json()
        assert body["message"] == (
            'container "c0" in pod "ipb" is waiting to start: trying and failing to pull image'
        )


class TestNoProcesses:
    @pytest.mark.parametrize(("method", "action"), [("POST", "exec"), ("GET", "attach")])
    async def test_exec_and_attach(self, client: Client, method: str, action: str) -> None:
        await create_pod(client, pod_manifest("web", "busybox:1.36"))
        resp = await client.request(method, f"{PODS}/web/{action}", params={"command": "ls"})
        assert resp.status == 400
        assert_status(await resp.json(), 400, "BadRequest", message_contains="runs no processes")

    async def test_port_forward_of_a_missing_pod(self, client: Client) -> None:
        resp = await client.post(f"{PODS}/nope/portforward")
        assert resp.status == 404
        assert_status(await resp.json(), 404, "NotFound", message_contains='pods "nope"')
