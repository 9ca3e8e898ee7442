"""A daemon simulating several nodes (`node.count`): each its own kubelet, as the API shows it.

Each node keeps its own image store (a pod on another node pulls an image again), its own
back-off (a failing pod's entry is on its node only) and reports its own `status.images`; pods
spread evenly and `spec.nodeName` pins one. Everything is awaited on pod states and events, never
on a duration.
"""

from __future__ import annotations

from typing import Any

from apikit import PODS, Client, create_pod, pod_manifest, pod_waiting_reason, wait_for

NODES = {"node": {"name": "n", "count": 2, "bandwidth": "unlimited"}}
IMAGE = "busybox:1.36"
MISSING = "example.com/missing:v1"


async def _doc(client: Client, path: str) -> Any:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _running(client: Client, name: str) -> bool:
    doc = await _doc(client, f"{PODS}/{name}")
    return bool(doc["status"].get("phase") == "Running")


async def _reasons(client: Client, pod: str) -> list[str]:
    events = await _doc(
        client, f"/api/v1/namespaces/default/events?fieldSelector=involvedObject.name={pod}"
    )
    return [e["reason"] for e in events["items"]]


async def test_each_node_has_its_own_store_and_back_off(api: Any) -> None:
    client: Client = await api(**NODES)
    nodes = await _doc(client, "/api/v1/nodes")
    assert [n["metadata"]["name"] for n in nodes["items"]] == ["n-0", "n-1"]

    await create_pod(client, pod_manifest("a", IMAGE, nodeName="n-0"))
    await wait_for(lambda: _running(client, "a"))
    # The same image on the other node: pulled there too (IfNotPresent, not present on n-1).
    await create_pod(client, pod_manifest("b", IMAGE, nodeName="n-1"))
    await wait_for(lambda: _running(client, "b"))
    assert "Pulling" in await _reasons(client, "b")
    # On n-0 it is present: no pull.
    await create_pod(client, pod_manifest("c", IMAGE, nodeName="n-0"))
    await wait_for(lambda: _running(client, "c"))
    assert "Pulling" not in await _reasons(client, "c")

    # A failing pull backs off on its own node only.
    await create_pod(client, pod_manifest("bad", MISSING, nodeName="n-1"))

    async def backed_off() -> bool:
        return (await pod_waiting_reason(client, "bad")) == ["ImagePullBackOff"]

    await wait_for(backed_off)
    on_n1 = await _doc(client, "/debug/pulls?node=n-1")
    on_n0 = await _doc(client, "/debug/pulls?node=n-0")
    assert [e["image"] for e in on_n1["backoff"]] == [MISSING]
    assert on_n0["backoff"] == []

    pods = await _doc(client, PODS)
    assert {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods["items"]} == {
        "a": "n-0",
        "b": "n-1",
        "bad": "n-1",
        "c": "n-0",
    }


async def test_pods_without_a_node_spread_evenly(api: Any) -> None:
    client: Client = await api(**NODES)
    for index in range(4):
        await create_pod(client, pod_manifest(f"p{index}", IMAGE))
    pods = await _doc(client, PODS)
    placed = [p["spec"]["nodeName"] for p in pods["items"]]
    assert sorted(placed) == ["n-0", "n-0", "n-1", "n-1"]
