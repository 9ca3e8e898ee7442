"""Pods no node takes are tried again as kube-scheduler tries them: at once on a cluster event
(a node updated, a bound pod removed), and at least every five minutes besides, each failed
try one more FailedScheduling event."""

from __future__ import annotations

import asyncio
import json

from apikit import EVENTS, PODS, Client, PodWatch, cluster_of, create_pod, pod_manifest

from kubesim_images.clock import run_virtual
from kubesim_images.daemon.unschedulable import FLUSH_INTERVAL, MAX_WAIT, UnschedulablePods
from kubesim_images.state import StateError

HANG = 10.0  # bounds a hang only


class TestFlushInVirtualTime:
    """The flush: every 30 s, the pods tried 5 min ago or more, in loop time."""

    def test_a_pod_is_tried_again_five_minutes_after_its_last_try(self) -> None:
        async def main() -> list[tuple[str, float]]:
            loop = asyncio.get_running_loop()
            retried: list[tuple[str, float]] = []
            queue = UnschedulablePods(lambda uid: retried.append((uid, loop.time())))
            queue.tried("a")  # at 0
            await asyncio.sleep(10)
            queue.tried("b")  # at 10
            await asyncio.sleep(640)
            queue.discard("a")
            queue.discard("b")
            await queue.stop()
            return retried

        # Flushes at 30, 60, ...: "a" (0) is due at 300 and again at 600; "b" (10) waits for
        # the flush at 330 (310 is no flush), then 630.
        assert (FLUSH_INTERVAL, MAX_WAIT) == (30.0, 300.0)
        assert run_virtual(main()) == [("a", 300.0), ("b", 330.0), ("a", 600.0), ("b", 630.0)]

    def test_the_task_ends_when_no_pod_waits_and_a_failed_save_is_tried_again(self) -> None:
        async def main() -> tuple[list[float], bool]:
            loop = asyncio.get_running_loop()
            seen: list[float] = []

            def retry(uid: str) -> None:
                seen.append(loop.time())
                if len(seen) == 1:
                    raise StateError("disk full")
                queue.discard(uid)  # bound

            queue = UnschedulablePods(retry)
            queue.tried("a")
            await asyncio.sleep(1000)
            ended = queue._task is not None and queue._task.done()
            await queue.stop()
            return seen, ended

        assert run_virtual(main()) == ([300.0, 600.0], True)


async def _until_failed_scheduling(client: Client, name: str, count: int) -> None:
    """Read the pod's FailedScheduling events (aggregated: one event, its count rising)."""
    params = {
        "watch": "1",
        "fieldSelector": f"involvedObject.name={name},reason=FailedScheduling",
    }
    async with client.get(EVENTS, params=params) as resp, asyncio.timeout(HANG):
        while True:
            line = await resp.content.readline()
            assert line, "the watch ended"
            if int(json.loads(line)["object"].get("count") or 1) >= count:
                return


class TestThroughTheApi:
    async def test_a_pending_pod_gets_another_failed_scheduling_at_each_retry(
        self, client: Client
    ) -> None:
        queue = cluster_of(client).pods.unschedulable
        queue.flush_interval, queue.max_wait = 0.01, 0.0
        await create_pod(client, pod_manifest("nowhere", "busybox:1.36", nodeSelector={"x": "y"}))
        await _until_failed_scheduling(client, "nowhere", 3)
        pod = await (await client.get(f"{PODS}/nowhere")).json()
        assert pod["status"]["conditions"][0]["reason"] == "Unschedulable"

    async def test_a_bound_pod_removed_offers_the_pending_ones_again(self, client: Client) -> None:
        pods = cluster_of(client).pods
        await create_pod(client, pod_manifest("nowhere", "busybox:1.36", nodeSelector={"x": "y"}))
        await create_pod(client, pod_manifest("web", "busybox:1.36"))
        retried: list[str] = []
        pods._retry_pending = lambda: retried.append("all")  # type: ignore[method-assign]
        async with PodWatch(client, "web") as watch:
            assert (
                await client.delete(f"{PODS}/web", params={"gracePeriodSeconds": "0"})
            ).status == 200
            await watch.until(lambda p: p["metadata"].get("deletionTimestamp"))
        await asyncio.sleep(0)
        assert retried == ["all"]
        assert "nowhere" in {r.status.pod.name for r in pods.records.values()}
