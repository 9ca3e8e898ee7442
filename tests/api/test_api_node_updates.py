"""A client's writes to the Node objects: patches of every kind (JSON patch included), PUT with
optimistic concurrency, the status left to the kubelet, a delete answered with a Success Status
and followed by the node's new registration (DELETED then ADDED on a watch), dry runs, and
DELETE on a pod collection."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from apikit import PODS, Client, assert_status, create_pod, pod_manifest

NODES = {"node": {"name": "n", "count": 2, "bandwidth": "unlimited"}}
NODE = "/api/v1/nodes/n-0"
PAUSE = "registry.k8s.io/pause:3.10"


async def _doc(client: Client, path: str) -> Any:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_json_patch_cordons_and_labels_and_the_status_stays_the_kubelets(api: Any) -> None:
    client: Client = await api(**NODES)
    ops = [
        {"op": "add", "path": "/spec/unschedulable", "value": True},
        {"op": "add", "path": "/metadata/labels/zone", "value": "a"},
        {"op": "replace", "path": "/status/capacity/cpu", "value": "999"},
    ]
    resp = await client.patch(
        NODE, data=json.dumps(ops), headers={"Content-Type": "application/json-patch+json"}
    )
    doc = await resp.json()
    assert resp.status == 200, doc
    assert doc["spec"]["unschedulable"] is True
    assert doc["metadata"]["labels"]["zone"] == "a"
    assert doc["status"]["capacity"]["cpu"] == "4"
    # The other node was not touched; the cordoned one takes no pod.
    assert "unschedulable" not in (await _doc(client, "/api/v1/nodes/n-1"))["spec"]
    for name in ("a", "b"):
        await create_pod(client, pod_manifest(name, PAUSE))
    listed = await _doc(client, PODS)
    assert {p["spec"]["nodeName"] for p in listed["items"]} == {"n-1"}


async def test_put_replaces_labels_and_refuses_a_stale_version(api: Any) -> None:
    client: Client = await api(**NODES)
    node = await _doc(client, NODE)
    node["metadata"]["labels"] = {**node["metadata"]["labels"], "tier": "gold"}
    resp = await client.put(NODE, json=node)
    updated = await resp.json()
    assert resp.status == 200, updated
    assert updated["metadata"]["labels"]["tier"] == "gold"
    assert int(updated["metadata"]["resourceVersion"]) > int(node["metadata"]["resourceVersion"])
    resp = await client.put(NODE, json=node)  # its resourceVersion is now old
    body = await resp.json()
    assert_status(body, 409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on nodes "n-0": the object has been modified; please '
        "apply your changes to the latest version and try again"
    )


async def test_a_delete_is_followed_by_a_new_registration(api: Any) -> None:
    client: Client = await api(**NODES)
    before = await _doc(client, NODE)
    dry = await client.delete(f"{NODE}?dryRun=All")
    assert dry.status == 200
    assert (await _doc(client, NODE))["metadata"]["uid"] == before["metadata"]["uid"]
    stale = await client.delete(NODE, json={"preconditions": {"uid": "not-it"}})
    assert_status(await stale.json(), 409, "Conflict")

    version = before["metadata"]["resourceVersion"]
    watch = await client.get("/api/v1/nodes", params={"watch": "1", "resourceVersion": version})
    try:
        resp = await client.delete(NODE)
        body = await resp.json()
        assert resp.status == 200
        assert body["status"] == "Success"
        assert body["details"] == {"name": "n-0", "kind": "nodes", "uid": before["metadata"]["uid"]}
        seen: list[tuple[str, str]] = []
        while len(seen) < 2:
            async with asyncio.timeout(10):  # bounds a hang only
                line = await watch.content.readline()
            event = json.loads(line)
            if event["object"]["metadata"]["name"] == "n-0":
                seen.append((event["type"], event["object"]["metadata"]["uid"]))
    finally:
        watch.close()
    after = await _doc(client, NODE)
    assert seen == [("DELETED", before["metadata"]["uid"]), ("ADDED", after["metadata"]["uid"])]
    assert after["metadata"]["uid"] != before["metadata"]["uid"]


async def test_delete_collection_of_pods_answers_the_pods_it_deleted(client: Client) -> None:
    for name, app in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        body = pod_manifest(name, PAUSE)
        body["metadata"]["labels"] = {"app": app}
        await create_pod(client, body)
    resp = await client.delete(f"{PODS}?labelSelector=app%3Da&gracePeriodSeconds=0")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["kind"] == "PodList"
    assert sorted(p["metadata"]["name"] for p in body["items"]) == ["a1", "a2"]
    left = await _doc(client, PODS)
    assert [p["metadata"]["name"] for p in left["items"]] == ["b1"]
    refused = await client.delete(f"{PODS}?fieldSelector=spec.nope%3Dx")
    assert_status(await refused.json(), 400, "BadRequest")


async def test_an_eviction_deletes_the_pod_gracefully(client: Client) -> None:
    discovery = await _doc(client, "/api/v1")
    entry = next(r for r in discovery["resources"] if r["name"] == "pods/eviction")
    assert (entry["group"], entry["version"], entry["kind"], entry["verbs"]) == (
        "policy",
        "v1",
        "Eviction",
        ["create"],
    )
    await create_pod(client, pod_manifest("victim", PAUSE))
    wrong = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}}
    resp = await client.post(f"{PODS}/victim/eviction", json=wrong)
    body = await resp.json()
    assert_status(body, 400, "BadRequest")
    assert body["message"] == "name in URL does not match name in Eviction object"
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "victim", "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 30},
    }
    resp = await client.post(f"{PODS}/victim/eviction", json=eviction)
    body = await resp.json()
    assert resp.status == 201, body
    assert (body["status"], body["code"]) == ("Success", 201)
    missing = await client.post(
        f"{PODS}/nope/eviction", json={**eviction, "metadata": {"name": "nope"}}
    )
    assert_status(await missing.json(), 404, "NotFound")
