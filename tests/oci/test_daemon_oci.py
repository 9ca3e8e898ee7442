"""The daemon with `registry: {type: oci}`: pods pull for real through the kubelet's logic."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from ocikit import BlobRule, Proxy, Seeded

from kubesim_images.contentstore import ContentStore

pytestmark = pytest.mark.integration
DEADLINE = 30.0


class Daemon:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.base = f"http://127.0.0.1:{port}"

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.base + path, json=body) as response,
        ):
            assert response.status < 300, await response.text()
            return await response.json()

    async def wait_event(self, pod: str, reason: str) -> dict[str, Any]:
        """Poll the pod's events (the API's own answer) until one has `reason`."""
        path = f"/api/v1/namespaces/default/events?fieldSelector=involvedObject.name={pod}"
        async with asyncio.timeout(DEADLINE):
            while True:
                for event in (await self.api("GET", path))["items"]:
                    if event["reason"] == reason:
                        return dict(event)
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def start_daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, Path]]:
    config = {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "DaemonConfig",
        "kubelet": {"serializeImagePulls": False, "registryPullQPS": 0},
        "sync": {"errorRequeue": "1s", "jitterFactor": 0},
        "registry": {"type": "oci", "platform": "linux/amd64"},
    }
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(config))
    state = tmp_path / "state"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubesim_images", "serve", "--port", "0", "--config", str(path),
        "--state-dir", str(state), stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_PROXY": "*"},
    )  # fmt: skip
    assert process.stderr is not None
    port = None
    async with asyncio.timeout(DEADLINE):
        async for line in process.stderr:
            doc = json.loads(line)
            if doc.get("event") == "serving":
                port = doc["port"]
                break
    assert port is not None, "the daemon exited before serving"

    async def drain() -> None:
        assert process.stderr is not None
        async for _ in process.stderr:
            pass

    drainer = asyncio.create_task(drain(), name="daemon stderr")
    try:
        yield Daemon(process, port), state
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(DEADLINE):
            code = await process.wait()
            await drainer
        assert code == 0


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
