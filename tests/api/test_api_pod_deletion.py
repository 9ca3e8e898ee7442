"""Graceful pod deletion as the apiserver and the kubelet do it: DELETE marks the pod
(deletionTimestamp, deletionGracePeriodSeconds), the kubelet kills it (Normal `Killing`,
"Stopping container NAME"; a pull under way fails with `context canceled`), then the object goes
(MODIFIED, then a final DELETED); a grace period of 0 removes it at once; DeleteOptions
preconditions answer 409 with the apiserver's text."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from apikit import (
    EVENTS,
    PODS,
    TABLE,
    Client,
    PodWatch,
    assert_status,
    create_pod,
    pod_manifest,
    wait_for,
)
from prometheus_client.parser import text_string_to_metric_families

PAUSE = "registry.k8s.io/pause:3.10"
SLOW: dict[str, Any] = {
    "node": {"bandwidth": "1Mi"},
    "registry": {"images": [{"name": "example.com/big:v1", "layers": [{"size": "50Mi"}]}]},
}


class Changes:
    """A watch on the pods from a version: every change after it, in order."""

    def __init__(self, response: Any) -> None:
        self.response = response

    async def take(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        out = []
        async with asyncio.timeout(10):  # bounds a hang only
            while len(out) < count:
                line = await self.response.content.readline()
                assert line, f"the watch ended after {out}"
                event = json.loads(line)
                out.append((event["type"], event["object"]))
        return out


@pytest.fixture
async def changes(client: Client) -> AsyncIterator[Any]:
    opened: list[Any] = []

    async def open_watch(version: str, **headers: str) -> Changes:
        params = {"watch": "1", "resourceVersion": version}
        response = await client.get(PODS, params=params, headers=headers)
        assert response.status == 200
        opened.append(response)
        return Changes(response)

    yield open_watch
    for response in opened:
        response.close()


async def _running(client: Client, name: str, *images: str, **spec: Any) -> dict[str, Any]:
    async with PodWatch(client, name) as watch:
        await create_pod(client, pod_manifest(name, *images, **spec))
        return dict(await watch.until(lambda p: p if p["status"]["phase"] == "Running" else None))


async def _events(client: Client, name: str) -> list[dict[str, Any]]:
    params = {"fieldSelector": f"involvedObject.name={name}"}
    return list((await (await client.get(EVENTS, params=params)).json())["items"])


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


class TestGracefulDeletion:
    async def test_terminating_then_killed_then_deleted(self, client: Client, changes) -> None:
        pod = await _running(client, "w", PAUSE, PAUSE)
        watch = await changes(pod["metadata"]["resourceVersion"])
        resp = await client.delete(f"{PODS}/w")
        answered = await resp.json()
        assert resp.status == 200, answered
        meta = answered["metadata"]
        assert meta["deletionGracePeriodSeconds"] == 30
        # deletionTimestamp is when the grace period ends: 30 s after the deletion.
        delay = _stamp(meta["deletionTimestamp"]) - _stamp(pod["metadata"]["creationTimestamp"])
        assert delay.total_seconds() >= 29

        (first, marked), (then, stopped), (last, gone) = await watch.take(3)
        assert first == "MODIFIED"
        assert marked["metadata"]["deletionTimestamp"] == meta["deletionTimestamp"]
        assert [c["ready"] for c in marked["status"]["containerStatuses"]] == [True, True]
        # The kubelet's status once the containers exited, before the object goes.
        assert then == "MODIFIED"
        assert stopped["metadata"]["deletionTimestamp"] == meta["deletionTimestamp"]
        assert stopped["status"]["phase"] == "Running"
        for container in stopped["status"]["containerStatuses"]:
            assert (container["ready"], container["started"]) == (False, False)
            assert container["state"]["terminated"]["reason"] == "Completed"
        conditions = {c["type"]: c for c in stopped["status"]["conditions"]}
        assert conditions["Ready"]["status"] == conditions["ContainersReady"]["status"] == "False"
        assert conditions["Ready"]["message"] == "containers with unready status: [c0 c1]"
        assert last == "DELETED"
        assert gone["metadata"]["uid"] == pod["metadata"]["uid"]
        assert gone["status"] == stopped["status"]
        versions = [int(doc["metadata"]["resourceVersion"]) for doc in (marked, stopped, gone)]
        assert versions == sorted(set(versions))
        assert (await client.get(f"{PODS}/w")).status == 404

        killing = [e for e in await _events(client, "w") if e["reason"] == "Killing"]
        assert [(e["type"], e["message"], e["source"]["component"]) for e in killing] == [
            ("Normal", "Stopping container c0", "kubelet"),
            ("Normal", "Stopping container c1", "kubelet"),
        ]
        assert [e["involvedObject"]["fieldPath"] for e in killing] == [
            "spec.containers{c0}",
            "spec.containers{c1}",
        ]

    async def test_the_terminating_row_of_a_table_watch(self, client: Client, changes) -> None:
        pod = await _running(client, "w", PAUSE)
        watch = await changes(pod["metadata"]["resourceVersion"], Accept=TABLE)
        assert (await client.delete(f"{PODS}/w")).status == 200
        (first, marked), (then, stopped), (last, gone) = await watch.take(3)
        assert (first, then, last) == ("MODIFIED", "MODIFIED", "DELETED")
        # kubectl get pods -w: 1/1 Terminating, 0/1 Terminating, and the same as it goes.
        assert marked["rows"][0]["cells"][1:3] == ["1/1", "Terminating"]
        assert stopped["rows"][0]["cells"][1:3] == ["0/1", "Terminating"]
        assert gone["rows"][0]["cells"][1:3] == ["0/1", "Terminating"]

    @pytest.mark.parametrize(
        ("how", "expected"),
        [
            ({"params": {"gracePeriodSeconds": "5"}}, 5),
            ({"json": {"kind": "DeleteOptions", "gracePeriodSeconds": 1}}, 1),
            ({}, 7),  # the pod's own terminationGracePeriodSeconds
        ],
    )
    async def test_the_grace_period(self, client: Client, how: dict[str, Any], expected: int):
        await create_pod(client, pod_manifest("w", PAUSE, terminationGracePeriodSeconds=7))
        resp = await client.delete(f"{PODS}/w", **how)
        doc = await resp.json()
        assert resp.status == 200, doc
        assert doc["metadata"]["deletionGracePeriodSeconds"] == expected

    async def test_a_grace_period_of_zero_deletes_at_once(self, client: Client, changes) -> None:
        pod = await _running(client, "w", PAUSE)
        watch = await changes(pod["metadata"]["resourceVersion"])
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0}
        resp = await client.delete(f"{PODS}/w", json=body)
        assert resp.status == 200
        # Gone before the answer: no MODIFIED, the deletion is the next change.
        assert (await client.get(f"{PODS}/w")).status == 404
        ((change, gone),) = await watch.take(1)
        assert change == "DELETED"
        assert gone["metadata"]["deletionGracePeriodSeconds"] == 0

        async def killed() -> bool:
            return any(e["reason"] == "Killing" for e in await _events(client, "w"))

        await wait_for(killed)  # the kubelet still stops the containers

    async def test_a_dry_run_marks_nothing(self, client: Client) -> None:
        await create_pod(client, pod_manifest("w", PAUSE))
        resp = await client.delete(f"{PODS}/w", params={"dryRun": "All"})
        doc = await resp.json()
        assert resp.status == 200, doc
        assert doc["metadata"]["deletionGracePeriodSeconds"] == 30
        stored = await (await client.get(f"{PODS}/w")).json()
        assert "deletionTimestamp" not in stored["metadata"]


class TestMidPullDeletion:
    async def test_the_pull_fails_with_context_canceled_and_is_counted(self, api) -> None:
        client = await api(**SLOW)
        await create_pod(client, pod_manifest("big", "example.com/big:v1"))

        async def pulling() -> bool:
            return bool((await (await client.get("/debug/pulls")).json())["inFlight"])

        await wait_for(pulling)
        async with PodWatch(client, "big") as watch:
            assert (await client.delete(f"{PODS}/big")).status == 200
            await watch.until(lambda p: "deletionTimestamp" in p["metadata"])

        async def gone() -> bool:
            return (await client.get(f"{PODS}/big")).status == 404

        await wait_for(gone)
        failed = [e for e in await _events(client, "big") if e["reason"] == "Failed"]
        canceled = "rpc error: code = Canceled desc = context canceled"
        assert [e["message"] for e in failed] == [
            f'Failed to pull image "example.com/big:v1": {canceled}'
        ]
        # A container never started is not stopped.
        assert not [e for e in await _events(client, "big") if e["reason"] == "Killing"]
        text = await (await client.get("/metrics")).text()
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        started = sum(s.value for s in samples if s.name == "kubesim_image_pulls_started_total")
        finished = {
            s.labels["result"]: s.value for s in samples if s.name == "kubesim_image_pulls_total"
        }
        assert started == 1
        assert finished == {"success": 0, "failure": 1}
        assert (await (await client.get("/debug/pulls")).json())["inFlight"] == []


class TestPreconditions:
    async def test_a_uid_or_version_that_does_not_match_is_a_conflict(self, client: Client):
        pod = await create_pod(client, pod_manifest("w", PAUSE))
        uid, version = pod["metadata"]["uid"], pod["metadata"]["resourceVersion"]
        cases = [
            ({"uid": "other"}, f"UID in precondition: other, UID in object meta: {uid}"),
            (
                {"resourceVersion": "1"},
                "ResourceVersion in precondition: 1, ResourceVersion in object meta: ",
            ),
        ]
        for preconditions, text in cases:
            body = {"kind": "DeleteOptions", "preconditions": preconditions}
            resp = await client.delete(f"{PODS}/w", json=body)
            status = await resp.json()
            assert_status(status, 409, "Conflict")
            assert status["message"].startswith(
                f'Operation cannot be fulfilled on pods "w": Precondition failed: {text}'
            )
        assert (await client.get(f"{PODS}/w")).status == 200
        current = (await (await client.get(f"{PODS}/w")).json())["metadata"]["resourceVersion"]
        assert int(current) >= int(version)
        body = {
            "kind": "DeleteOptions",
            "preconditions": {"uid": uid, "resourceVersion": current},
            "gracePeriodSeconds": 0,
        }
        assert (await client.delete(f"{PODS}/w", json=body)).status == 200

    async def test_preconditions_on_a_stored_kind(self, client: Client) -> None:
        path = "/api/v1/namespaces/default/secrets"
        created = await client.post(path, json={"metadata": {"name": "s"}})
        assert created.status == 201
        body = {"kind": "DeleteOptions", "preconditions": {"uid": "x"}}
        resp = await client.delete(f"{path}/s", json=body)
        status = await resp.json()
        assert_status(status, 409, "Conflict")
        assert status["message"].startswith(
            'Operation cannot be fulfilled on secrets "s": Precondition failed: UID in '
            "precondition: x, UID in object meta: "
        )
