"""`kubectl logs -f`: a followed log of a running container stays open until the container
stops running, the client goes or the daemon stops; an unfollowed one ends at once."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientResponse
from apikit import PODS, Client, PodWatch, cluster_of, create_pod, pod_manifest

from kubesim_images.daemon.api import WATCHES
from kubesim_images.daemon.watches import Watch, WatchHub

# Bounds a hang only: every wait below ends on an event the test causes.
HANG = 10.0


def hub_of(client: Client) -> WatchHub:
    return client.server.app[WATCHES]  # type: ignore[union-attr]


async def _running(client: Client, name: str, image: str = "busybox:1.36") -> None:
    async with PodWatch(client, name) as watch:
        await create_pod(client, pod_manifest(name, image))
        await watch.until(lambda p: p["status"]["phase"] == "Running")


async def _follow(client: Client, name: str) -> tuple[ClientResponse, Watch]:
    """A followed log, once its stream is registered (its headers arrived)."""
    resp = await client.get(f"{PODS}/{name}/log", params={"follow": "true"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    streams = [w for w in hub_of(client)._open if w.subresource == "log"]
    assert len(streams) == 1
    return resp, streams[0]


async def _ends(resp: ClientResponse) -> bytes:
    async with asyncio.timeout(HANG):
        return await resp.read()


class TestFollow:
    async def test_an_unfollowed_log_ends_at_once(self, client: Client) -> None:
        await _running(client, "web")
        resp = await client.get(f"{PODS}/web/log")
        assert resp.status == 200
        assert await resp.read() == b""
        assert hub_of(client).longrunning() == {}

    async def test_it_stays_open_until_the_pod_is_deleted(self, client: Client) -> None:
        await _running(client, "web")
        resp, stream = await _follow(client, "web")
        assert hub_of(client).longrunning() == {("pods", "log", "namespace"): 1}
        assert not stream.finished.is_set()
        assert (await client.delete(f"{PODS}/web")).status == 200
        assert await _ends(resp) == b""
        assert stream.finished.is_set()
        assert hub_of(client).longrunning() == {}

    async def test_it_ends_when_the_container_is_restarted_for_a_new_image(
        self, client: Client
    ) -> None:
        await _running(client, "web")
        resp, _ = await _follow(client, "web")
        patch = {"spec": {"containers": [{"name": "c0", "image": "busybox:1.37"}]}}
        answer = await client.patch(
            f"{PODS}/web",
            json=patch,
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        assert answer.status == 200, await answer.json()
        assert await _ends(resp) == b""

    async def test_it_ends_when_the_client_goes(self, client: Client) -> None:
        hub_of(client)._liveness_interval = 0.01
        await _running(client, "web")
        resp, stream = await _follow(client, "web")
        resp.close()
        async with asyncio.timeout(HANG):
            await stream.finished.wait()
        assert hub_of(client).longrunning() == {}

    async def test_shutdown_ends_it(self, client: Client) -> None:
        await _running(client, "web")
        resp, _ = await _follow(client, "web")
        drained = await hub_of(client).close(grace=HANG)
        assert (drained.ended, drained.aborted) == (1, 0)
        assert await _ends(resp) == b""

    async def test_a_pod_on_its_image_is_refused_and_an_unscheduled_one_ends(
        self, client: Client
    ) -> None:
        body: dict[str, Any] = pod_manifest("nowhere", "busybox:1.36", nodeSelector={"x": "y"})
        await create_pod(client, body)
        resp = await client.get(f"{PODS}/nowhere/log", params={"follow": "true"})
        assert resp.status == 200
        assert await _ends(resp) == b""
        assert cluster_of(client).pods.get("default", "nowhere")["status"]["phase"] == "Pending"
