"""The node's read model and lifecycle: one frozen snapshot of its queue, pulls in flight with
progress, back-off, images, disk and image GC, taken in virtual time; its pod workers guarded;
its listener told of changes from its start on."""

from __future__ import annotations

import asyncio

import pytest
import structlog
from simkit import pod

from kubesim_images.backoff import BackoffEntry
from kubesim_images.clock import NS_PER_SECOND, now_ns, run_virtual
from kubesim_images.events import EventLog
from kubesim_images.image_gc import GC_PERIOD_NS, GCReason
from kubesim_images.kubeletconfig import KubeletConfig
from kubesim_images.manager import ImageManager
from kubesim_images.node import Node, NodeListener
from kubesim_images.pod import pod_from_manifest
from kubesim_images.podworkers import PodStatus
from kubesim_images.reference import parse_normalized
from kubesim_images.registry.catalogue import Catalogue, make_image
from kubesim_images.registry.simulated import Fault, SimulatedRegistry
from kubesim_images.snapshot import BackoffView, NodeSnapshot
from kubesim_images.store import ImageRecord, ImageStore

MI = 2**20
S = NS_PER_SECOND
BIG, SMALL, BROKEN = "example.com/big:v1", "example.com/small:v1", "example.com/broken:v1"


def _node(listener: NodeListener | None = None) -> Node:
    refs = {name: parse_normalized(name) for name in (BIG, SMALL, BROKEN)}
    registry = SimulatedRegistry(
        Catalogue(
            [
                make_image(refs[BIG], [(100 * MI, None)]),
                make_image(refs[SMALL], [(10 * MI, None)]),
                make_image(refs[BROKEN], [(1 * MI, None)]),
            ]
        ),
        node_bandwidth=10 * MI,  # bytes per second
        faults=[Fault(error="unauthorized", image=refs[BROKEN], fail_first=100)],
    )
    return Node(
        "node-0",
        registry,
        KubeletConfig(registry_pull_qps=0),  # serial pulls
        EventLog(),
        store=ImageStore(capacity=1000 * MI, other_usage=100 * MI),
        listener=listener,
    )


class TestSnapshot:
    def test_queue_progress_backoff_images_and_disk(self) -> None:
        async def main() -> NodeSnapshot:
            node = _node()
            node.start()
            # broken fails at once and backs off; big downloads at 10 MiB/s; small waits.
            for name, image in (("c", BROKEN), ("a", BIG), ("b", SMALL)):
                node.add_pod(pod_from_manifest(pod(name, image), uid=f"uid-{name}"))
            await asyncio.sleep(5)
            snapshot = node.snapshot(now_ns(asyncio.get_running_loop()))
            await node.stop()
            return snapshot

        snapshot = run_virtual(main())
        assert snapshot.node == "node-0"
        assert snapshot.at == 5 * S
        assert snapshot.pull_concurrency == 1
        [running] = snapshot.in_flight
        assert (running.image, running.pod, running.started_at) == (BIG, "default/a", 0)
        assert running.reference == "example.com/big:v1"
        assert (running.bytes_done, running.bytes_total) == (50 * MI, 100 * MI)
        [waiting] = snapshot.waiting
        assert (waiting.image, waiting.pod, waiting.started_at) == (SMALL, "default/b", None)
        assert snapshot.backoff == (BackoffView("uid-c", BROKEN, 10 * S, 0),)
        assert snapshot.backoff[0].key == f"uid-c_{BROKEN}"
        assert snapshot.backoff[0].remaining(snapshot.at) == 5 * S
        assert snapshot.images == ()
        assert (snapshot.disk.capacity, snapshot.disk.used) == (1000 * MI, 100 * MI)
        assert snapshot.disk.bytes_downloaded == 0
        with pytest.raises(AttributeError):  # frozen: a reader cannot change the node
            snapshot.at = 0  # type: ignore[misc]

    def test_images_last_use_and_gc_history(self) -> None:
        async def main() -> NodeSnapshot:
            node = _node()
            # 100 MiB other usage: small brings it to 88 %, and freeing 10 MiB gets to 80 %.
            node.store.capacity = 125 * MI
            node.start()
            status = node.add_pod(pod_from_manifest(pod("b", SMALL), uid="uid-b"))
            await asyncio.sleep(2)
            assert status.ready
            node.remove_pod("uid-b")
            loop = asyncio.get_running_loop()
            await asyncio.sleep(GC_PERIOD_NS / S - 2)  # the first run, at 5m
            first = node.snapshot(now_ns(loop))
            await asyncio.sleep(GC_PERIOD_NS / S)  # the second, at 10m
            second = node.snapshot(now_ns(loop))
            await node.stop()
            return first, second

        first, second = run_virtual(main())
        # At 5m the sweep detects the image for the first time: younger than the 2m minimum
        # age, it stays (as on a kubelet, whose sweeps are what "first detected" means).
        [image] = first.images
        assert (image.size, image.first_detected, image.last_used) == (10 * MI, GC_PERIOD_NS, None)
        assert image.repo_tags == (SMALL,)
        [run] = first.gc.history
        assert (run.at, run.usage_percent, run.amount_to_free) == (GC_PERIOD_NS, 88, 10 * MI)
        assert run.removed == ()
        assert run.error is not None
        assert run.error.endswith("but only found 0 bytes eligible to free.")

        assert [run.at for run in second.gc.history] == [GC_PERIOD_NS, 2 * GC_PERIOD_NS]
        run = second.gc.history[-1]
        assert [(r.size, r.reason) for r in run.removed] == [(10 * MI, GCReason.SPACE)]
        assert run.error is None
        assert second.gc.runs == 2
        assert second.gc.images_collected == 1
        assert second.gc.bytes_freed == 10 * MI
        assert second.gc.collected_total == ((GCReason.SPACE, 1),)
        assert second.gc.disk == (
            (GC_PERIOD_NS, 110 * MI, 110 * MI),
            (2 * GC_PERIOD_NS, 110 * MI, 100 * MI),
        )
        assert second.images == ()
        assert (second.disk.used, second.disk.layer_bytes) == (100 * MI, 0)
        assert second.disk.bytes_downloaded == 10 * MI


class TestLifecycle:
    def test_a_crashing_pod_worker_is_logged_at_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async def main() -> list[dict[str, object]]:
            node = _node()

            def crash(*_: object) -> None:
                raise RuntimeError("boom")

            monkeypatch.setattr(ImageManager, "decide", crash)
            with structlog.testing.capture_logs() as logs:
                node.add_pod(pod_from_manifest(pod("a", SMALL), uid="uid-a"))
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                crashed = [e for e in logs if e["event"] == "task_crashed"]
            await node.stop()
            return crashed

        [crashed] = run_virtual(main())
        assert crashed["task"] == "pod-worker:default/a"
        assert crashed["node"] == "node-0"
        assert crashed["log_level"] == "error"

    def test_the_listener_hears_changes_from_start_on(self) -> None:
        class Recorder:
            def __init__(self) -> None:
                self.heard: list[tuple[str, str]] = []

            def image_changed(self, record: ImageRecord) -> None:
                self.heard.append(("image", record.repo_tags[0]))

            def image_removed(self, image_id: str) -> None:
                self.heard.append(("removed", image_id))

            def backoff_changed(self, key: str, entry: BackoffEntry | None) -> None:
                self.heard.append(("backoff", key))

            def pod_changed(self, status: PodStatus) -> None:
                self.heard.append(("pod", status.pod.name))

        async def main() -> list[tuple[str, str]]:
            recorder = Recorder()
            node = _node(recorder)
            # Given before the start (preloaded, or restored by the daemon): not told back.
            node.preload([ImageRecord("sha256:" + "1" * 64, (), repo_tags=["example.com/p:v1"])])
            node.start()
            node.add_pod(pod_from_manifest(pod("c", BROKEN), uid="uid-c"))
            node.add_pod(pod_from_manifest(pod("b", SMALL), uid="uid-b"))
            await asyncio.sleep(2)
            await node.stop()
            return recorder.heard

        heard = run_virtual(main())
        assert ("image", "example.com/p:v1") not in heard
        assert ("backoff", f"uid-c_{BROKEN}") in heard
        assert ("image", SMALL) in heard
        assert ("pod", "b") in heard
        assert heard.index(("backoff", f"uid-c_{BROKEN}")) < heard.index(("image", SMALL))


class TestImagesInUse:
    """What image GC asks of the node every period: kept up to date as containers start, their
    images change and pods go, never by walking every container."""

    @staticmethod
    def _walked(node: Node) -> set[str]:
        return {
            cs.image_id
            for status in node.workers.pods.values()
            for cs in status.all_statuses()
            if cs.image_id
        }

    def test_started_changed_killed_removed_and_restored_pods(self) -> None:
        async def main() -> list[tuple[set[str], set[str]]]:
            node = _node()
            node.start()
            seen: list[tuple[set[str], set[str]]] = []

            def check() -> None:
                seen.append((set(node.images_in_use()), self._walked(node)))

            a = node.add_pod(pod_from_manifest(pod("a", SMALL), uid="uid-a"))
            b = node.add_pod(pod_from_manifest(pod("b", SMALL), uid="uid-b"))
            c = node.add_pod(pod_from_manifest(pod("c", BIG), uid="uid-c"))
            await asyncio.sleep(20)  # small, then big, pulled: all three started
            check()
            node.update_pod(a, pod_from_manifest(pod("a", BIG), uid="uid-a"))
            check()
            await asyncio.sleep(1)  # big is present: a started again on it
            check()
            node.kill_pod(b.pod.uid)
            check()
            node.remove_pod(c.pod.uid)
            check()
            node.remove_pod(a.pod.uid)
            check()
            node.resume_pod(a)  # a status restored after a restart, its image recorded
            check()
            await node.stop()
            return seen

        seen = run_virtual(main())
        assert all(kept == walked for kept, walked in seen), seen
        # small and big; b still holds small while a moves to big; b killed; c, then a gone;
        # a back with its big.
        assert [len(kept) for kept, _ in seen] == [2, 2, 2, 1, 1, 0, 1]
