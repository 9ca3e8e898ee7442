"""The node as the API shows it: `status.images` as the kubelet reports them, and `/debug/pulls`,
the pull queue with progress, waiting pulls and back-off entries.

Slow pulls are made with `node: {bandwidth: 1Mi}` and 20Mi images; each test ends while they are
still running, and the fixture's teardown cancels them.
"""

from __future__ import annotations

import re
from typing import Any

from apikit import (
    MI,
    PODS,
    TABLE,
    Client,
    assert_status,
    create_pod,
    pod_manifest,
    pod_waiting_reason,
    wait_for,
)
from prometheus_client.parser import text_string_to_metric_families

NODE = "/api/v1/nodes/kubesim-node"
DIGEST = re.compile(r"^[a-z0-9.\-/]+@sha256:[0-9a-f]{64}$")
SLOW: dict[str, Any] = {
    "node": {"bandwidth": "1Mi"},
    "registry": {
        "images": [
            {"name": "example.com/big:v1", "layers": [{"size": "20Mi"}]},
            {"name": "example.com/big:v2", "layers": [{"size": "20Mi"}]},
        ]
    },
}


async def _images(client: Client) -> list[dict[str, Any]]:
    resp = await client.get(NODE)
    assert resp.status == 200
    return (await resp.json())["status"]["images"]


async def _pulls(client: Client) -> dict[str, Any]:
    resp = await client.get("/debug/pulls")
    assert resp.status == 200
    return await resp.json()


class TestNodeObject:
    """`/api/v1/nodes` and `/api/v1/nodes/kubesim-node`."""

    async def test_list_and_get(self, client: Client) -> None:
        listed = await (await client.get("/api/v1/nodes")).json()
        assert listed["kind"] == "NodeList"
        (node,) = listed["items"]
        assert node["metadata"]["name"] == "kubesim-node"
        doc = await (await client.get(NODE)).json()
        assert doc["kind"] == "Node"
        assert doc["metadata"]["uid"] == node["metadata"]["uid"]
        ready = next(c for c in doc["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        assert doc["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.32.")

    async def test_unknown_node(self, client: Client) -> None:
        resp = await client.get("/api/v1/nodes/other-node")
        assert resp.status == 404
        assert_status(await resp.json(), 404, "NotFound", message_contains='nodes "other-node"')

    async def test_field_selector_by_name(self, client: Client) -> None:
        resp = await client.get("/api/v1/nodes", params={"fieldSelector": "metadata.name=x"})
        assert (await resp.json())["items"] == []

    async def test_table(self, client: Client) -> None:
        table = await (await client.get("/api/v1/nodes", headers={"Accept": TABLE})).json()
        (row,) = table["rows"]
        assert row["cells"][:2] == ["kubesim-node", "Ready"]


class TestNodeImages:
    """`status.images`: digests then tags, sizes in bytes, largest first."""

    async def test_the_preloaded_pause_image(self, client: Client) -> None:
        (pause,) = await _images(client)
        digest, tag = pause["names"]
        assert DIGEST.match(digest)
        assert digest.startswith("registry.k8s.io/pause@sha256:")
        assert tag == "registry.k8s.io/pause:3.10"
        assert isinstance(pause["sizeBytes"], int)
        assert pause["sizeBytes"] > 0

    async def test_a_pulled_image_is_listed_largest_first(self, client: Client) -> None:
        await create_pod(client, pod_manifest("web", "nginx:1.27", "busybox:1.36"))

        async def pulled() -> list[dict[str, Any]] | None:
            images = await _images(client)
            return images if len(images) == 3 else None

        images = await wait_for(pulled)
        sizes = [image["sizeBytes"] for image in images]
        assert all(isinstance(size, int) for size in sizes)
        assert sizes == sorted(sizes, reverse=True)
        for image in images:
            names = image["names"]
            digests = [n for n in names if "@sha256:" in n]
            assert digests
            assert names[: len(digests)] == digests, "repo digests come before tags"
        nginx = images[0]
        assert nginx["names"][0].startswith("docker.io/library/nginx@sha256:")
        assert nginx["names"][1:] == ["docker.io/library/nginx:1.27"]
        assert nginx["sizeBytes"] > 50 * MI
        assert any("registry.k8s.io/pause:3.10" in image["names"] for image in images)
        assert any("docker.io/library/busybox:1.36" in image["names"] for image in images)

    async def test_the_running_containers_image_id_is_a_listed_digest(self, client: Client) -> None:
        await create_pod(client, pod_manifest("web", "nginx:1.27"))

        async def running() -> bool:
            return await pod_waiting_reason(client, "web") == [None]

        await wait_for(running)
        doc = await (await client.get(f"{PODS}/web")).json()
        image_id = doc["status"]["containerStatuses"][0]["imageID"]
        assert any(image_id in image["names"] for image in await _images(client))


class TestDebugPulls:
    """`/debug/pulls`: in flight with progress, waiting behind the serial queue, back-off."""

    async def test_an_idle_node(self, client: Client) -> None:
        doc = await _pulls(client)
        assert doc == {
            "node": "kubesim-node",
            "concurrency": 1,
            "inFlight": [],
            "waiting": [],
            "backoff": [],
        }

    async def test_a_pull_in_flight_shows_its_progress(self, api) -> None:
        client = await api(**SLOW)
        await create_pod(client, pod_manifest("big", "example.com/big:v1"))

        async def progressing() -> dict[str, Any] | None:
            flights = (await _pulls(client))["inFlight"]
            return flights[0] if flights and flights[0].get("bytesDone", 0) > 0 else None

        first = await wait_for(progressing)
        assert first["image"] == "example.com/big:v1"
        assert first["pod"] == "default/big"
        assert first["reference"] == "example.com/big:v1"
        assert first["bytesTotal"] == 20 * MI
        assert 0 < first["bytesDone"] < first["bytesTotal"]
        assert 0 <= first["percent"] < 100

        async def advanced() -> bool:
            (later,) = (await _pulls(client))["inFlight"]
            return later["bytesDone"] > first["bytesDone"]

        await wait_for(advanced)
        assert await pod_waiting_reason(client, "big") == ["ContainerCreating"]

    async def test_a_second_pull_waits_for_the_serial_slot(self, api) -> None:
        client = await api(**SLOW)
        await create_pod(client, pod_manifest("first", "example.com/big:v1"))
        await create_pod(client, pod_manifest("second", "example.com/big:v2"))

        async def queued() -> dict[str, Any] | None:
            doc = await _pulls(client)
            return doc if doc["inFlight"] and doc["waiting"] else None

        doc = await wait_for(queued)
        (flying,) = doc["inFlight"]
        (waiting,) = doc["waiting"]
        assert (flying["pod"], waiting["pod"]) == ("default/first", "default/second")
        assert waiting["image"] == "example.com/big:v2"
        assert "bytesDone" not in waiting
        assert "runningSeconds" not in waiting
        assert waiting["queuedSeconds"] >= 0
        text = await (await client.get("/metrics")).text()
        gauges = {
            s.name: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert gauges["kubesim_image_pulls_in_flight"] == 1
        assert gauges["kubesim_image_pull_queue_depth"] == 1

    async def test_a_failing_image_has_a_back_off_entry(self, client: Client) -> None:
        pod = await create_pod(client, pod_manifest("bad", "example.com/missing:v1"))

        async def backing_off() -> list[dict[str, Any]] | None:
            return (await _pulls(client))["backoff"] or None

        (entry,) = await wait_for(backing_off)
        uid = pod["metadata"]["uid"]
        assert entry["key"] == f"{uid}_example.com/missing:v1"
        assert entry["podUID"] == uid
        assert entry["image"] == "example.com/missing:v1"
        assert entry["inBackOff"] is True
        assert entry["backoffSeconds"] == 10.0
        assert 0 < entry["remainingSeconds"] <= 10.0


async def test_debug_catalogue_lists_the_registry_without_secrets(api: Any) -> None:
    private = {"username": "robot", "password": "pa55-w0rd-never-shown"}
    client = await api(
        registry={
            "images": [{"name": "example.com/own:v1", "layers": [{"size": "1Mi"}], "auth": private}]
        }
    )
    resp = await client.get("/debug/catalogue")
    assert resp.status == 200
    text = await resp.text()
    assert "pa55-w0rd-never-shown" not in text
    rows = {row["reference"]: row for row in (await resp.json())["images"]}
    assert rows["example.com/own:v1"]["auth"] is True
    assert rows["example.com/own:v1"]["size"] == MI
    assert rows["nginx:1.27"]["auth"] is False  # the bundled catalogue is there too


async def _bytes_downloaded(client: Client) -> float:
    text = await (await client.get("/metrics")).text()
    return next(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "kubesim_image_bytes_downloaded_total"
    )


class TestMovingTags:
    """`latest` names the same image as its version, as on the real registries."""

    async def test_pulling_latest_after_its_version_downloads_nothing(self, client: Client) -> None:
        await create_pod(client, pod_manifest("pinned", "nginx:1.27"))

        async def running(name: str) -> bool:
            return await pod_waiting_reason(client, name) == [None]

        await wait_for(lambda: running("pinned"))
        downloaded = await _bytes_downloaded(client)
        assert downloaded > 40 * MI
        await create_pod(client, pod_manifest("floating", "nginx:latest"))  # Always: a real pull
        await wait_for(lambda: running("floating"))
        assert await _bytes_downloaded(client) == downloaded
        (nginx,) = [i for i in await _images(client) if any("nginx" in n for n in i["names"])]
        tags = [n for n in nginx["names"] if "@" not in n]
        assert sorted(tags) == ["docker.io/library/nginx:1.27", "docker.io/library/nginx:latest"]
