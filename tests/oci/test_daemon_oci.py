"""The daemon with `registry: {type: oci}`: pods pull for real through the kubelet's logic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from daemonkit import DEADLINE, Daemon, start_daemon
from ocikit import BlobRule, Proxy, Seeded

from kubesim_images.contentstore import ContentStore

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def oci_daemon(seeded: Seeded, tmp_path: Path) -> AsyncIterator[tuple[Daemon, Path]]:
    async with start_daemon(tmp_path) as started:
        yield started


class TestDaemonPulls:
    """Queue, events and node status over real pulls."""

    async def test_pod_pulls_for_real(
        self, seeded: Seeded, oci_daemon: tuple[Daemon, Path]
    ) -> None:
        daemon, state = oci_daemon
        image = f"{seeded.open.host}/demo/big:v1"
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "real"},
            "spec": {"containers": [{"name": "c", "image": image}]},
        }
        await daemon.api("POST", "/api/v1/namespaces/default/pods", body)
        pulled = await daemon.wait_event("real", "Pulled")
        layers = json.loads(
            (seeded.layout.root / "blobs/sha256" / seeded.images["big"]["digest"][7:]).read_bytes()
        )["layers"]
        size = sum(layer["size"] for layer in layers)
        assert pulled["message"].startswith(f'Successfully pulled image "{image}" in ')
        assert pulled["message"].endswith(f"Image size: {size} bytes.")
        node = await daemon.api("GET", "/api/v1/nodes/kubesim-node")
        names = {n for i in node["status"]["images"] for n in i["names"]}
        assert image in names
        store = ContentStore(state / "content")
        assert [i.repo_tags for i in store.images()] == [(image,)]
        store.close()

    async def test_missing_image_fails_with_containerds_text(
        self, seeded: Seeded, oci_daemon: tuple[Daemon, Path]
    ) -> None:
        daemon, _ = oci_daemon
        image = f"{seeded.open.host}/demo/nope:v1"
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "missing"},
            "spec": {"containers": [{"name": "c", "image": image}]},
        }
        await daemon.api("POST", "/api/v1/namespaces/default/pods", body)
        failed = await daemon.wait_event("missing", "Failed")
        assert failed["message"] == (
            f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull '
            f'and unpack image "{image}": failed to resolve reference "{image}": {image}: not found'
        )

    async def test_restart_forgets_images_removed_while_down(
        self, seeded: Seeded, tmp_path: Path
    ) -> None:
        image = f"{seeded.open.host}/demo/tiny:v1"
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "tiny"},
            "spec": {"containers": [{"name": "c", "image": image}]},
        }
        async with start_daemon(tmp_path) as (daemon, state):
            await daemon.api("POST", "/api/v1/namespaces/default/pods", body)
            await daemon.wait_event("tiny", "Pulled")
        store = ContentStore(state / "content")
        [stored] = store.images()
        store.remove(stored.id)  # what `kubesim-images rmi` does
        store.close()
        async with start_daemon(tmp_path) as (daemon, _):
            node = await daemon.api("GET", "/api/v1/nodes/kubesim-node")
        assert not any(image in i["names"] for i in node["status"]["images"])

    async def test_sigterm_mid_pull_drains_and_the_restart_resumes(
        self, seeded: Seeded, tmp_path: Path
    ) -> None:
        layer = seeded.big_layer
        proxy = Proxy(seeded.open.host)
        rule = BlobRule(layer["digest"], after=layer["size"] // 2, hold=True)
        proxy.rules[layer["digest"]] = rule
        await proxy.start()
        image = f"{proxy.host}/demo/big:v1"
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "big"},
            "spec": {"containers": [{"name": "c", "image": image}]},
        }
        try:
            # start_daemon's exit sends SIGTERM and requires exit code 0 within the deadline.
            async with start_daemon(tmp_path) as (daemon, _):
                await daemon.api("POST", "/api/v1/namespaces/default/pods", body)
                await rule.reached.wait()
            proxy.requests.clear()
            async with start_daemon(tmp_path) as (daemon, state):
                pulled = await daemon.wait_event("big", "Pulled")
        finally:
            await proxy.stop()
        assert pulled["message"].startswith(f'Successfully pulled image "{image}"')
        ranges = [r for _, path, r in proxy.requests if path.endswith(layer["digest"])]
        assert len(ranges) == 1
        assert ranges[0].startswith("bytes=")  # the partial download was resumed, not redone
        store = ContentStore(state / "content")
        assert [i.repo_tags for i in store.images()] == [(image,)]
        store.close()


class TestDeploymentRollout:
    """A Deployment's image rollout pulls from a real registry through the node's queue."""

    async def test_set_image_rolls_out_from_a_real_registry(
        self, seeded: Seeded, oci_daemon: tuple[Daemon, Path]
    ) -> None:
        daemon, _ = oci_daemon
        first, second = (
            f"{seeded.open.host}/demo/shared-a:v1",
            f"{seeded.open.host}/demo/shared-b:v1",
        )
        apps = "/apis/apps/v1/namespaces/default/deployments"
        body = {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": first}]},
                },
            },
        }

        async def rolled_out(generation: int) -> dict[str, Any]:
            async with asyncio.timeout(DEADLINE):
                while True:  # the API's own answer, as `kubectl rollout status` reads it
                    d = await daemon.api("GET", f"{apps}/web")
                    status = d.get("status") or {}
                    if (
                        status.get("observedGeneration") == generation
                        and status.get("updatedReplicas") == 4
                        and status.get("replicas") == 4
                        and status.get("availableReplicas") == 4
                    ):
                        return dict(d)
                    await asyncio.sleep(0.1)

        await daemon.api("POST", apps, body)
        await rolled_out(1)
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": second}]}}}}
        async with (
            aiohttp.ClientSession() as session,
            session.patch(
                f"{daemon.base}{apps}/web",
                data=json.dumps(patch),
                headers={"Content-Type": "application/strategic-merge-patch+json"},
            ) as response,
        ):
            assert response.status == 200, await response.text()
        await rolled_out(2)
        pods = (await daemon.api("GET", "/api/v1/namespaces/default/pods"))["items"]
        assert len(pods) == 4
        assert {p["status"]["containerStatuses"][0]["image"] for p in pods} == {second}
        pulled = [
            e
            for p in pods
            for e in (
                await daemon.api(
                    "GET",
                    "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name="
                    + p["metadata"]["name"],
                )
            )["items"]
            if e["reason"] == "Pulled"
        ]
        assert pulled, "no new pod reported its image"
        node = await daemon.api("GET", "/api/v1/nodes/kubesim-node")
        names = {n for i in node["status"]["images"] for n in i["names"]}
        assert {first, second} <= names
