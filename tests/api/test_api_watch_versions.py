"""resourceVersion as the apiserver keeps it: every change (a status change included) takes a
new version and reaches a watch once; a watch from version N replays the changes after N; one
from before the window gets a 410 Expired ERROR event; a list carries the collection version."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from apikit import PODS, SECRETS, Client, cluster_of, create_pod, pod_manifest

MERGE = {"Content-Type": "application/merge-patch+json"}


async def _events(client: Client, path: str, version: str, count: int) -> list[dict[str, Any]]:
    """The first `count` events of a watch from `version`; fails if the stream ends first."""
    params = {"watch": "1", "resourceVersion": version, "timeoutSeconds": "30"}
    async with client.get(path, params=params) as response:
        assert response.status == 200
        out = []
        async with asyncio.timeout(20):  # bounds a hang only
            while len(out) < count:
                line = await response.content.readline()
                assert line, f"the watch ended after {out}"
                out.append(json.loads(line))
        return out


async def _secret(client: Client, name: str) -> dict[str, Any]:
    body = {"metadata": {"name": name}, "stringData": {"k": "v"}}
    response = await client.post(SECRETS, json=body)
    assert response.status == 201
    return dict(await response.json())


def _version(doc: dict[str, Any]) -> int:
    return int(doc["metadata"]["resourceVersion"])


async def test_a_watch_from_a_version_replays_exactly_the_changes_after_it(client: Client) -> None:
    first = await _secret(client, "s1")
    await _secret(client, "s2")
    patched = await client.patch(
        f"{SECRETS}/s1", data=json.dumps({"metadata": {"labels": {"a": "b"}}}), headers=MERGE
    )
    assert patched.status == 200
    await _secret(client, "s3")
    events = await _events(client, SECRETS, first["metadata"]["resourceVersion"], 3)
    seen = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert seen == [("ADDED", "s2"), ("MODIFIED", "s1"), ("ADDED", "s3")]
    versions = [_version(e["object"]) for e in events]
    assert versions == sorted(set(versions))
    assert all(v > _version(first) for v in versions)


async def test_every_status_change_takes_a_new_version_and_is_sent_once(client: Client) -> None:
    created = await create_pod(client, pod_manifest("p", "nginx:1.27"))
    events: list[dict[str, Any]] = []
    params = {"watch": "1", "resourceVersion": created["metadata"]["resourceVersion"]}
    async with client.get(PODS, params=params) as response:
        async with asyncio.timeout(20):  # bounds a hang only
            while not events or events[-1]["object"]["status"]["phase"] != "Running":
                line = await response.content.readline()
                assert line, f"the watch ended after {events}"
                events.append(json.loads(line))
    assert {e["type"] for e in events} == {"MODIFIED"}
    versions = [_version(e["object"]) for e in events]
    assert versions == sorted(set(versions)), "each change once, each at a version of its own"
    assert versions[0] > _version(created)
    current = await (await client.get(f"{PODS}/p")).json()
    assert _version(current) == versions[-1]


async def test_a_deletion_is_a_change_at_a_new_version(client: Client) -> None:
    created = await _secret(client, "gone")
    assert (await client.delete(f"{SECRETS}/gone")).status == 200
    [event] = await _events(client, SECRETS, created["metadata"]["resourceVersion"], 1)
    assert event["type"] == "DELETED"
    assert _version(event["object"]) > _version(created)


async def test_a_version_older_than_the_window_is_one_410_error_event(client: Client) -> None:
    params = {"watch": "1", "resourceVersion": "5"}
    async with client.get(SECRETS, params=params) as response:
        assert response.status == 200  # as the apiserver: the watch opens, then says why not
        lines = (await response.read()).splitlines()
    [event] = [json.loads(line) for line in lines]
    assert event["type"] == "ERROR"
    status = event["object"]
    assert (status["kind"], status["status"], status["code"], status["reason"]) == (
        "Status",
        "Failure",
        410,
        "Expired",
    )
    assert status["message"] == "too old resource version: 5 (1000)"


async def test_a_malformed_version_is_refused(client: Client) -> None:
    response = await client.get(SECRETS, params={"watch": "1", "resourceVersion": "x"})
    assert response.status == 400
    assert (await response.json())["reason"] == "BadRequest"


async def test_a_list_carries_the_collection_version(client: Client) -> None:
    doc = await _secret(client, "s")
    listed = await (await client.get(SECRETS)).json()
    assert int(listed["metadata"]["resourceVersion"]) >= _version(doc)
    assert int(listed["metadata"]["resourceVersion"]) == cluster_of(client).resource_version
