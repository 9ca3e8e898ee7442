"""Helpers for the HTTP API tests: the fast daemon config, manifests, polling and Status checks.

`config_document(**sections)` is the test daemon's config: fast timing (200ms requeue, no
jitter, no registry latency, unlimited node bandwidth) with the given sections merged in. The
`api` fixture in conftest.py serves it in-process.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from kubesim_images.daemon.api import CLUSTER
from kubesim_images.daemon.cluster import Cluster

Client = TestClient[web.Request, web.Application]

MI = 2**20
DATA = Path(__file__).parent / "data"
PODS = "/api/v1/namespaces/default/pods"
SECRETS = "/api/v1/namespaces/default/secrets"
SERVICE_ACCOUNTS = "/api/v1/namespaces/default/serviceaccounts"
EVENTS = "/api/v1/namespaces/default/events"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
PROTOBUF = "application/vnd.kubernetes.protobuf"

FAST: dict[str, Any] = {
    "apiVersion": "kubesim.io/v1alpha1",
    "kind": "DaemonConfig",
    "sync": {"errorRequeue": "200ms", "jitterFactor": 0},
    "registry": {"latency": "0s", "bundledCatalogue": True, "images": []},
    "node": {"bandwidth": "unlimited"},
}

ApiFactory = Callable[..., Awaitable[Client]]


def config_document(**sections: Any) -> dict[str, Any]:
    """FAST with each given section merged over the default one (a shallow merge per section)."""
    document = copy.deepcopy(FAST)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    return document


def cluster_of(client: Client) -> Cluster:
    return client.server.app[CLUSTER]  # type: ignore[union-attr]


def pod_manifest(
    name: str,
    *images: str,
    policy: str | None = None,
    init: tuple[str, ...] = (),
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    def container(prefix: str, index: int, image: str) -> dict[str, Any]:
        c: dict[str, Any] = {"name": f"{prefix}{index}", "image": image}
        if policy:
            c["imagePullPolicy"] = policy
        return c

    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container("c", i, img) for i, img in enumerate(images)], **spec},
    }
    if init:
        body["spec"]["initContainers"] = [container("init", i, img) for i, img in enumerate(init)]
    if labels:
        body["metadata"]["labels"] = labels
    return body


async def create_pod(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(PODS, json=body)
    doc = await resp.json()
    assert resp.status == 201, doc
    return doc


def pb_varint(n: int) -> bytes:
    """A protobuf varint, as client-go's protobuf serializer writes one."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_field(number: int, value: bytes | int) -> bytes:
    """A protobuf field: a varint for an int, length-delimited for bytes."""
    if isinstance(value, int):
        return pb_varint(number << 3) + pb_varint(value)
    return pb_varint(number << 3 | 2) + pb_varint(len(value)) + value


async def next_event(resp: ClientResponse, *, within: float = 10.0) -> dict[str, Any]:
    """The next event of a watch's stream; `within` bounds a hang only."""
    async with asyncio.timeout(within):
        line = await resp.content.readline()
    assert line, "the watch ended"
    event: dict[str, Any] = json.loads(line)
    return event


async def wait_for(
    probe: Callable[[], Awaitable[Any]], *, within: float = 5.0, interval: float = 0.02
) -> Any:
    """Poll `probe` on the real clock until it returns a truthy value; fail after `within` s."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within}s; last probe: {last!r}")


class PodWatch:
    """A watch on one pod, opened before the pod exists: every change of its status, in order.

    Polling can miss a state that lasts one sync; a watch cannot (each status change is a
    MODIFIED event). The daemon registers a watch before it answers the headers, so once
    `async with PodWatch(...)` has entered, no later change is missed.
    """

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name
        self._response: Any = None

    async def __aenter__(self) -> Self:
        params = {"watch": "1", "fieldSelector": f"metadata.name={self.name}"}
        self._response = await self.client.get(PODS, params=params)
        assert self._response.status == 200
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._response.close()

    async def until(self, probe: Callable[[dict[str, Any]], Any], *, within: float = 10.0) -> Any:
        """Read changes until `probe(pod)` is truthy; that value. `within` only bounds a hang."""
        async with asyncio.timeout(within):
            while True:
                line = await self._response.content.readline()
                assert line, f"the watch on {self.name} ended"
                result = probe(json.loads(line)["object"])
                if result:
                    return result

    async def reasons_until(self, field: str, until: str) -> list[str | None]:
        """Distinct waiting reasons of the first container in `field`, in order, up to `until`."""
        seen: list[str | None] = []

        def probe(pod: dict[str, Any]) -> bool:
            statuses = pod.get("status", {}).get(field) or []
            if not statuses:
                return False
            reason = (statuses[0].get("state") or {}).get("waiting", {}).get("reason")
            if not seen or seen[-1] != reason:
                seen.append(reason)
            return reason == until

        await self.until(probe)
        return seen


async def pod_waiting_reason(
    client: Client, name: str, field: str = "containerStatuses"
) -> list[str | None]:
    """The waiting reason of each container of a pod (None for one not waiting)."""
    resp = await client.get(f"{PODS}/{name}")
    doc = await resp.json()
    return [
        (cs.get("state") or {}).get("waiting", {}).get("reason")
        for cs in doc["status"].get(field) or []
    ]


def assert_status(
    body: Any, code: int, reason: str, *, message_contains: str | None = None
) -> None:
    """A `v1.Status` failure with this code and reason, and nothing like a traceback in it."""
    assert isinstance(body, dict), body
    assert body["kind"] == "Status", body
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code, body
    assert body["reason"] == reason, body
    assert "Traceback" not in json.dumps(body)
    if message_contains is not None:
        assert message_contains in body["message"], body["message"]
