"""Image GC on simulated nodes: its timing, the disk, lifetimes and re-pulls, in virtual time.

The numbers are worked by hand in each test's comments: a 1000 MiB image filesystem, images of
a few hundred MiB, the kubelet's defaults (85 % / 80 %, 2 minutes minimum age) unless a test
says otherwise.
"""

from __future__ import annotations

import hashlib

import pytest
from simkit import MI, image, pod, scenario, simulate
from structlog.testing import capture_logs

from kubesim_images.clock import run_virtual, sleep_ns
from kubesim_images.errors import ConfigError
from kubesim_images.events import EventLog
from kubesim_images.image_gc import GCPolicy
from kubesim_images.nodegc import NodeImageGC
from kubesim_images.reasons import Reason
from kubesim_images.scenario.model import Scenario, load_document
from kubesim_images.scenario.report import to_json
from kubesim_images.scenario.runner import ScenarioResult
from kubesim_images.store import ImageRecord, ImageStore, Layer

S = 1_000_000_000
MINUTE = 60 * S
A, B, PAUSE = "example.com/a:v1", "example.com/b:v1", "registry.k8s.io/pause:3.10"


class TestTiming:
    """GC runs every 5 minutes from the node's start; the first sweep is at the start."""

    def _runs(self, start_after: int, until: int) -> tuple[list[int], int | None]:
        async def main():
            await sleep_ns(start_after)
            store = ImageStore(capacity=1000)
            store.add(ImageRecord("preloaded", (Layer("sha256:" + "1" * 64, 10),)), None, 0)
            gc = NodeImageGC("node-0", store, GCPolicy(), EventLog(), set)
            gc.start()
            await sleep_ns(until - start_after)
            await gc.stop()
            return [run.at for run in gc.history], gc.manager.records["preloaded"].first_detected

        return run_virtual(main())

    def test_runs_land_on_five_minute_marks_from_the_start(self):
        runs, detected = self._runs(0, 16 * MINUTE)
        assert runs == [5 * MINUTE, 10 * MINUTE, 15 * MINUTE]
        assert detected == 0

    def test_a_node_started_later_counts_from_its_own_start(self):
        runs, detected = self._runs(7 * S, 12 * MINUTE)
        assert runs == [7 * S + 5 * MINUTE, 7 * S + 10 * MINUTE]
        assert detected == 7 * S

    def test_high_threshold_100_runs_no_gc_but_keeps_sweeping(self):
        async def main():
            store = ImageStore(capacity=1000)
            gc = NodeImageGC("node-0", store, GCPolicy(100, 80), EventLog(), set)
            gc.start()
            await sleep_ns(2 * MINUTE)
            store.add(ImageRecord("late", (Layer("sha256:" + "2" * 64, 990),)), None, 0)
            await sleep_ns(4 * MINUTE)
            await gc.stop()
            return gc.runs, gc.manager.records["late"].first_detected, len(store)

        assert run_virtual(main()) == (0, 5 * MINUTE, 1)

    def test_a_crash_is_logged_at_once_and_ends_the_loop(self):
        calls = []

        def in_use():
            calls.append(len(calls))
            if len(calls) == 2:  # the first sweep works, the 5m run crashes
                raise RuntimeError("boom")
            return set()

        async def main():
            gc = NodeImageGC("node-0", ImageStore(), GCPolicy(), EventLog(), in_use)
            with capture_logs() as logs:
                gc.start()
                await sleep_ns(16 * MINUTE)
            await gc.stop()
            return logs, gc.runs

        logs, runs = run_virtual(main())
        (crash,) = [entry for entry in logs if entry["event"] == "task_crashed"]
        assert crash["task"] == "image-gc:node-0"
        assert (runs, len(calls)) == (0, 2)  # no run after the crash


def _gc_day(**nodes):
    """Pod `old` uses A (500 MiB) for 1 minute; `keep` uses B (400 MiB) from 2 minutes on;
    `again` wants A at 11 minutes. The pause image (10 MiB) is preloaded and pinned."""
    return simulate(
        {
            "nodes": {"imageFs": {"capacity": "1000Mi"}, "preloadedImages": [PAUSE], **nodes},
            "registry": {"images": [image(A, 500), image(B, 400), image(PAUSE, 10)]},
            "workload": [
                {"at": "0s", "lifetime": "1m", "pod": pod("old", A)},
                {"at": "2m", "pod": pod("keep", B)},
                {"at": "11m", "pod": pod("again", A)},
            ],
        }
    )


class TestCollection:
    """Disk pressure, the minimum age, pinned and in-use images, and a re-pull."""

    def test_a_day_in_eleven_minutes(self):
        result = _gc_day()
        # At 5m: 910 of 1000 MiB used (91 %), so free down to 80 %: 200 - 90 = 110 MiB. A is
        # unused but first detected only now (age 0 < 2m), B is in use, pause is pinned:
        # nothing is eligible. At 10m A is 5 minutes old: removed, 500 MiB back.
        (event,) = [e for e in result.events if e.about_node]
        assert (event.t, event.reason, event.node) == (
            5 * MINUTE,
            Reason.FREE_DISK_SPACE_FAILED,
            "node-0",
        )
        assert event.message == (
            "Failed to garbage collect required amount of images. Attempted to free "
            f"{110 * MI} bytes, but only found 0 bytes eligible to free."
        )
        (node,) = result.nodes
        assert (node.gc_runs, node.images_collected, node.bytes_freed) == (2, 1, 500 * MI)
        # Disk samples, (t, before, after) each period: the 5m run freed nothing.
        assert node.disk == (
            (5 * MINUTE, 910 * MI, 910 * MI),
            (10 * MINUTE, 910 * MI, 410 * MI),
        )
        # `again` pulls A back at 11m: a re-pull, and the disk is as full as before.
        assert node.re_pulls == 1
        assert node.used == 910 * MI
        assert result.pulls == 3

    def test_json_reports_disk_images_and_gc(self):
        doc = to_json(ScenarioResult(_scenario_stub(), [_gc_day()]))
        (variant,) = doc["variants"]
        summary = variant["summary"]
        assert {k: summary[k] for k in ("gcRuns", "imagesGarbageCollected", "bytesFreed")} == {
            "gcRuns": 2,
            "imagesGarbageCollected": 1,
            "bytesFreed": 500 * MI,
        }
        assert summary["rePulls"] == 1
        (node,) = variant["nodes"]
        assert node["imageFs"] == {"capacity": 1000 * MI, "used": 910 * MI}
        images = {i["name"]: i for i in node["images"]}
        assert set(images) == {f"example.com/{n}:v1" for n in "ab"} | {PAUSE}
        # B: first detected by the 5m run, in use at every run since (the last at 10m).
        assert (images[B]["firstDetected"], images[B]["lastUsed"]) == (300.0, 600.0)
        # A came back at 11m, after the last sweep: not yet detected.
        assert (images[A]["firstDetected"], images[A]["lastUsed"]) == (None, None)
        # pause: swept at the start, never used by a container.
        assert (images[PAUSE]["firstDetected"], images[PAUSE]["lastUsed"]) == (0.0, None)
        (event,) = [e for e in variant["events"] if e["reason"] == "FreeDiskSpaceFailed"]
        assert (event["pod"], event["namespace"], event["type"]) == (None, "default", "Warning")

    def test_a_bigger_disk_needs_no_gc(self):
        result = _gc_day(imageFs={"capacity": "2000Mi"})
        (node,) = result.nodes
        assert (node.gc_runs, node.images_collected, node.re_pulls) == (2, 0, 0)
        assert not any(e.about_node for e in result.events)

    def test_maximum_age_collects_without_pressure(self):
        # imageMaximumGCAge 6m, 2000 MiB disk: at 10m (the node is older than 6m) A, unused
        # since... never seen in use, goes for age; B is in use; pause is pinned.
        result = simulate(
            {
                "kubelet": {"registryPullQPS": 0, "imageMaximumGCAge": "6m"},
                "nodes": {"imageFs": {"capacity": "2000Mi"}, "preloadedImages": [PAUSE]},
                "registry": {"images": [image(A, 500), image(B, 400), image(PAUSE, 10)]},
                "workload": [
                    {"at": "0s", "lifetime": "1m", "pod": pod("old", A)},
                    {"at": "2m", "pod": pod("keep", B)},
                    {"at": "11m", "pod": pod("again", A)},
                ],
            }
        )
        (node,) = result.nodes
        assert (node.images_collected, node.bytes_freed, node.re_pulls) == (1, 500 * MI, 1)


class TestFullDisk:
    """A pull that does not fit fails as containerd's does and goes to back-off."""

    def test_no_space_left_on_device(self):
        digest = "sha256:" + "f" * 64
        result = simulate(
            {
                "duration": "25s",
                "nodes": {"imageFs": {"capacity": "1000Mi", "otherUsage": "600Mi"}},
                "registry": {"images": [image(A, 500, digests={0: digest})]},
                "workload": [{"pod": pod("big", A)}],
            }
        )
        ingest = hashlib.sha256(f"layer-{digest}".encode()).hexdigest()
        failed = [e.message for e in result.events if e.reason is Reason.FAILED]
        assert failed[0] == (
            f'Failed to pull image "{A}": failed to pull and unpack image "{A}": failed to copy: '
            f"write /var/lib/containerd/io.containerd.content.v1.content/ingest/{ingest}/data: "
            "no space left on device"
        )
        # Pulls at 0, 10 (back-off 10 s over) and 30 would be next; 20 is in back-off.
        reasons = [
            (e.t // S, e.reason.value)
            for e in result.events
            if e.reason.value in ("Pulling", "BackOff")
        ]
        assert reasons == [(0, "Pulling"), (10, "Pulling"), (20, "BackOff")]
        (node,) = result.nodes
        assert node.used == 600 * MI  # nothing of the failed pulls was kept
        (status,) = result.pods
        assert status.statuses[0].reason == "ImagePullBackOff"


def _scenario_stub() -> Scenario:
    return Scenario("gc", "<test>", ())


class TestScenarioFields:
    """`nodes.imageFs`, `nodes.sandboxImage` and `lifetime`, refused with the field's path."""

    @staticmethod
    def _error(spec) -> str:
        with pytest.raises(ConfigError) as info:
            load_document(scenario(spec), source="f.yaml")
        return str(info.value)

    def test_refusals(self):
        base = {"registry": {"images": [image(A, 1)]}, "workload": [{"pod": pod("p", A)}]}
        assert self._error({**base, "nodes": {"imageFs": {"capacity": "0"}}}) == (
            "f.yaml: spec.nodes.imageFs.capacity: must be positive"
        )
        assert self._error(
            {**base, "nodes": {"imageFs": {"capacity": "1Gi", "otherUsage": "2Gi"}}}
        ) == (
            "f.yaml: spec.nodes.imageFs.otherUsage: must not exceed the capacity (1073741824 bytes)"
        )
        zero = {**base, "workload": [{"pod": pod("p", A), "lifetime": "0s"}]}
        assert self._error(zero) == "f.yaml: spec.workload[0].lifetime: must be positive"

    def test_defaults_and_values(self):
        spec = {
            "registry": {"images": [image(A, 1)]},
            "nodes": {
                "imageFs": {"capacity": "30Gi", "otherUsage": "5Gi"},
                "sandboxImage": "pause",
            },
            "workload": [{"pod": pod("p", A), "lifetime": "10m", "replicas": 2}],
        }
        variant = load_document(scenario(spec)).variants[0]
        assert (variant.image_fs.capacity, variant.image_fs.other_usage) == (30 << 30, 5 << 30)
        assert variant.sandbox_image == "docker.io/library/pause:latest"
        assert sorted(variant.pod_lifetimes.values()) == [10 * MINUTE, 10 * MINUTE]
        default = load_document(scenario({"registry": {"images": [image(A, 1)]}})).variants[0]
        assert (default.image_fs.capacity, default.image_fs.other_usage) == (100 << 30, 0)
        assert default.sandbox_image == PAUSE
