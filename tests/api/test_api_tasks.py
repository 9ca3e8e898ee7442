"""The daemon's background tasks run under the one guard: a crash is logged when it happens."""

from __future__ import annotations

import asyncio

from apikit import Client, cluster_of, create_pod, pod_manifest
from structlog.testing import capture_logs

from kubesim_images.podworkers import PodStatus


async def test_a_pod_worker_that_raises_logs_its_crash_at_once(client: Client) -> None:
    cluster = cluster_of(client)
    workers = cluster.node.workers

    release = asyncio.Event()

    async def broken_sync(status: PodStatus) -> bool:
        await release.wait()  # the worker is still there when the test looks it up
        raise RuntimeError(f"sync of {status.pod.name} failed")

    workers.sync = broken_sync  # type: ignore[method-assign]
    with capture_logs() as logs:
        doc = await create_pod(client, pod_manifest("p", "nginx:1.27"))
        task = workers._tasks[doc["metadata"]["uid"]]
        assert not [entry for entry in logs if entry["event"] == "task_crashed"]
        release.set()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    crashed = [entry for entry in logs if entry["event"] == "task_crashed"]
    assert len(crashed) == 1
    assert crashed[0]["task"] == "pod-worker:default/p"
    assert crashed[0]["pod"] == "default/p"
    assert str(crashed[0]["exc_info"]) == "sync of p failed"
