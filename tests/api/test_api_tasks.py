"""The daemon's background tasks run under the one guard: a crash is logged when it happens."""

from __future__ import annotations

import asyncio

import pytest
from apikit import Client, create_pod, pod_manifest
from structlog.testing import capture_logs

from kubesim_images.manager import ImageManager
from kubesim_images.pod import Container, Pod


async def test_a_pod_worker_that_raises_logs_its_crash_at_once(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_decide(_manager: ImageManager, pod: Pod, container: Container) -> None:
        raise RuntimeError(f"sync of {pod.name} failed")

    monkeypatch.setattr(ImageManager, "decide", broken_decide)
    with capture_logs() as logs:
        await create_pod(client, pod_manifest("p", "nginx:1.27"))
        # The worker's sync runs within a few turns of the loop (no timer): the crash is
        # logged then, not when the daemon stops.
        for _ in range(100):
            if any(entry["event"] == "task_crashed" for entry in logs):
                break
            await asyncio.sleep(0)
    crashed = [entry for entry in logs if entry["event"] == "task_crashed"]
    assert len(crashed) == 1
    assert crashed[0]["task"] == "pod-worker:default/p"
    assert crashed[0]["pod"] == "default/p"
    assert str(crashed[0]["exc_info"]) == "sync of p failed"
