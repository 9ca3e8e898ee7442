"""The events of a pod's life beyond the image manager's, as a real cluster records them: the
scheduler's `Scheduled`, the kubelet's `Created`/`Started` per container start (init containers
and restarts included), and `FailedToRetrieveImagePullSecret` for a missing pull secret."""

from __future__ import annotations

import json
from typing import Any

from apikit import EVENTS, PODS, Client, PodWatch, create_pod, pod_manifest, wait_for

PAUSE = "registry.k8s.io/pause:3.10"
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}


async def _events(client: Client, name: str) -> list[dict[str, Any]]:
    params = {"fieldSelector": f"involvedObject.name={name}"}
    return list((await (await client.get(EVENTS, params=params)).json())["items"])


def _said(events: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [
        (
            e["reason"],
            e["message"],
            e["involvedObject"].get("fieldPath", ""),
            e["source"]["component"],
        )
        for e in events
    ]


async def test_scheduled_then_pulled_then_created_and_started(client: Client) -> None:
    async with PodWatch(client, "w2") as watch:
        await create_pod(client, pod_manifest("w2", "nginx:1.27", init=(PAUSE,)))
        await watch.until(lambda p: p["status"]["phase"] == "Running")
    said = _said(await _events(client, "w2"))
    assert said[0] == (
        "Scheduled",
        "Successfully assigned default/w2 to kubesim-node",
        "",
        "default-scheduler",
    )
    lifecycle = [s for s in said if s[0] in {"Created", "Started"}]
    assert lifecycle == [
        ("Created", "Created container: init0", "spec.initContainers{init0}", "kubelet"),
        ("Started", "Started container init0", "spec.initContainers{init0}", "kubelet"),
        ("Created", "Created container: c0", "spec.containers{c0}", "kubelet"),
        ("Started", "Started container c0", "spec.containers{c0}", "kubelet"),
    ]
    reasons = [s[0] for s in said]
    # The app container is created once its image is pulled.
    assert reasons.index("Pulled") < reasons.index("Created", reasons.index("Started") + 1)


async def test_a_restarted_container_is_created_and_started_again(client: Client) -> None:
    async with PodWatch(client, "w") as watch:
        await create_pod(client, pod_manifest("w", PAUSE))
        await watch.until(lambda p: p["status"]["phase"] == "Running")
        patch = {"spec": {"containers": [{"name": "c0", "image": "nginx:1.27"}]}}
        resp = await client.patch(f"{PODS}/w", data=json.dumps(patch), headers=STRATEGIC)
        assert resp.status == 200, await resp.text()
        await watch.until(
            lambda p: (
                p["status"]["containerStatuses"][0]["restartCount"] == 1
                and p["status"]["phase"] == "Running"
            )
        )
    events = await _events(client, "w")
    # The same texts again: each one event, counted twice, listed by its last occurrence.
    counted = [(e["reason"], e["count"]) for e in events if e["reason"] != "Scheduled"]
    assert counted[-2:] == [("Created", 2), ("Started", 2)]
    assert ("Killing", 1) in counted


async def test_a_missing_pull_secret_is_warned_at_each_sync(client: Client) -> None:
    await create_pod(
        client,
        pod_manifest(
            "p", "example.com/missing:v1", imagePullSecrets=[{"name": "nope"}, {"name": "gone"}]
        ),
    )

    async def warned_twice() -> list[dict[str, Any]] | None:
        warned = [
            e
            for e in await _events(client, "p")
            if e["reason"] == "FailedToRetrieveImagePullSecret"
        ]
        return warned if warned and warned[0]["count"] >= 2 else None

    (warned,) = await wait_for(warned_twice)
    assert warned["type"] == "Warning"
    assert warned["message"] == (
        "Unable to retrieve some image pull secrets (nope, gone); "
        "attempting to pull the image may not succeed."
    )
    assert "fieldPath" not in warned["involvedObject"]
    assert warned["source"]["component"] == "kubelet"


async def test_no_warning_when_the_secret_exists(client: Client) -> None:
    resp = await client.post(
        "/api/v1/namespaces/default/secrets", json={"metadata": {"name": "there"}}
    )
    assert resp.status == 201
    async with PodWatch(client, "p") as watch:
        await create_pod(client, pod_manifest("p", PAUSE, imagePullSecrets=[{"name": "there"}]))
        await watch.until(lambda p: p["status"]["phase"] == "Running")
    reasons = {e["reason"] for e in await _events(client, "p")}
    assert "FailedToRetrieveImagePullSecret" not in reasons
