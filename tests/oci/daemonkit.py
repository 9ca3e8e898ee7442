"""The daemon as a process with `registry: {type: oci}`, for tests that drive it over HTTP."""

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
import yaml

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
async def start_daemon(
    tmp_path: Path, *, kubelet: dict[str, Any] | None = None, node: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Daemon, Path]]:
    """The daemon on `tmp_path/state`; `kubelet` and `node` add to its config's sections."""
    config = {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "DaemonConfig",
        "kubelet": {"serializeImagePulls": False, "registryPullQPS": 0, **(kubelet or {})},
        "sync": {"errorRequeue": "1s", "jitterFactor": 0},
        "registry": {"type": "oci", "platform": "linux/amd64"},
        "node": node or {},
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
