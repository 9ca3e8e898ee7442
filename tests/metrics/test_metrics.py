"""Metrics: the kubelet's image metrics reproduced exactly, and the node's state at scrape time.

Every assertion reads the rendered exposition back through prometheus_client's own parser, so
what is checked is what a Prometheus server would scrape. Expected values for the kubelet's
metrics come from the kubelet's sources and tests (pkg/kubelet/metrics/metrics.go and its
testdata/image_pull_duration_metric, pkg/kubelet/images/image_manager_test.go).
"""

from __future__ import annotations

import asyncio

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubesim_images.clock import run_virtual
from kubesim_images.events import EventLog, FanOut
from kubesim_images.kubeletconfig import KubeletConfig
from kubesim_images.metrics import (
    IMAGE_PULL_DURATION_BUCKETS,
    Metrics,
    image_size_bucket,
)
from kubesim_images.node import Node
from kubesim_images.pod import pod_from_manifest
from kubesim_images.podworkers import SyncSettings
from kubesim_images.policy import PullPolicy
from kubesim_images.reference import parse_normalized
from kubesim_images.registry.catalogue import Catalogue, make_image
from kubesim_images.registry.simulated import Fault, SimulatedRegistry
from kubesim_images.store import ImageRecord, ImageStore, Layer

MI = 2**20
GI = 2**30

PULL_DURATION = "kubelet_image_pull_duration_seconds"
ENSURE = "kubesim_image_manager_ensure_image_requests_total"


def scrape(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, keyed by sample name and label set."""
    body, content_type = metrics.render()
    assert content_type == prometheus_client.CONTENT_TYPE_LATEST
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def sample(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def families(metrics: Metrics) -> dict[str, prometheus_client.Metric]:
    return {f.name: f for f in text_string_to_metric_families(metrics.render()[0].decode())}


# The kubelet's TestImagePullDurationMetric data points: (size in bytes, seconds) and the label
# testdata/image_pull_duration_metric expects for each.
KUBELET_DATA_POINTS = [
    (0, 0.0, "N/A"),
    (5 * MI, 10.0, "0-10MB"),
    (15 * MI, 20.0, "10MB-100MB"),
    (500 * MI, 200.0, "100MB-500MB"),
    (15 * GI, 6000.0, "10GB-20GB"),
    (200 * GI, 10000.0, "GT100GB"),
]


class TestImageSizeBucket:
    """`GetImageSizeBucket`: strictly greater than the bucket's lower bound, 0 is "N/A"."""

    @pytest.mark.parametrize(("size", "label"), [(s, label) for s, _, label in KUBELET_DATA_POINTS])
    def test_the_kubelets_own_data_points(self, size, label):
        assert image_size_bucket(size) == label

    @pytest.mark.parametrize(
        ("size", "label"),
        [
            (1, "0-10MB"),
            (10 * MI, "0-10MB"),  # a bound belongs to the bucket below it
            (10 * MI + 1, "10MB-100MB"),
            (100 * MI, "10MB-100MB"),
            (100 * MI + 1, "100MB-500MB"),
            (500 * MI + 1, "500MB-1GB"),
            (GI, "500MB-1GB"),
            (GI + 1, "1GB-5GB"),
            (5 * GI + 1, "5GB-10GB"),
            (20 * GI + 1, "20GB-30GB"),
            (30 * GI + 1, "30GB-40GB"),
            (40 * GI + 1, "40GB-60GB"),
            (60 * GI + 1, "60GB-100GB"),
            (100 * GI, "60GB-100GB"),
            (100 * GI + 1, "GT100GB"),
        ],
    )
    def test_bounds_are_exclusive_below(self, size, label):
        assert image_size_bucket(size) == label

    def test_negative_size_is_a_bug_not_a_bucket(self):
        with pytest.raises(ValueError, match="negative"):
            image_size_bucket(-1)


class TestPullDurationHistogram:
    def test_buckets_are_the_kubelets(self):
        assert IMAGE_PULL_DURATION_BUCKETS == (
            1, 5, 10, 20, 30, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600,
        )  # fmt: skip
        metrics = Metrics()
        metrics.pull_finished("example.com/a:v1", 10.0, 5 * MI, ok=True)
        family = families(metrics)[PULL_DURATION]
        assert family.type == "histogram"
        assert family.documentation == "[ALPHA] Duration in seconds to pull an image."
        bounds = [s.labels["le"] for s in family.samples if s.name == PULL_DURATION + "_bucket"]
        assert [float(b) for b in bounds] == [*IMAGE_PULL_DURATION_BUCKETS, float("inf")]

    def test_reproduces_the_kubelets_testdata(self):
        metrics = Metrics()
        for size, seconds, _ in KUBELET_DATA_POINTS:
            metrics.pull_finished("example.com/a:v1", seconds, size, ok=True)
        samples = scrape(metrics)
        for _size, seconds, label in KUBELET_DATA_POINTS:
            assert sample(samples, PULL_DURATION + "_count", image_size_in_bytes=label) == 1
            assert sample(samples, PULL_DURATION + "_sum", image_size_in_bytes=label) == seconds
        # Spot checks of the cumulative buckets in testdata/image_pull_duration_metric.
        bucket = PULL_DURATION + "_bucket"
        assert sample(samples, bucket, image_size_in_bytes="0-10MB", le="5.0") == 0
        assert sample(samples, bucket, image_size_in_bytes="0-10MB", le="10.0") == 1
        assert sample(samples, bucket, image_size_in_bytes="100MB-500MB", le="180.0") == 0
        assert sample(samples, bucket, image_size_in_bytes="100MB-500MB", le="240.0") == 1
        assert sample(samples, bucket, image_size_in_bytes="GT100GB", le="3600.0") == 0
        assert sample(samples, bucket, image_size_in_bytes="GT100GB", le="+Inf") == 1
        assert sample(samples, bucket, image_size_in_bytes="N/A", le="1.0") == 1

    def test_a_5_mib_pull_lands_in_0_10mb(self):
        metrics = Metrics()
        metrics.pull_finished("example.com/a:v1", 3.0, 5 * MI, ok=True)
        samples = scrape(metrics)
        assert sample(samples, PULL_DURATION + "_count", image_size_in_bytes="0-10MB") == 1
        labels = {
            dict(key[1]).get("image_size_in_bytes")
            for key in samples
            if key[0] == PULL_DURATION + "_count"
        }
        assert labels == {"0-10MB"}

    def test_observation_is_truncated_to_milliseconds_like_the_kubelet(self):
        metrics = Metrics()
        metrics.pull_finished("example.com/a:v1", 1.0009, MI, ok=True)
        assert sample(scrape(metrics), PULL_DURATION + "_sum", image_size_in_bytes="0-10MB") == 1.0

    def test_failed_pulls_are_counted_but_not_observed(self):
        metrics = Metrics()
        metrics.pull_started("example.com/a:v1")
        metrics.pull_finished("example.com/a:v1", 4.0, 0, ok=False)
        samples = scrape(metrics)
        assert not [key for key in samples if key[0].startswith(PULL_DURATION)]
        assert sample(samples, "kubesim_image_pulls_started_total") == 1
        assert sample(samples, "kubesim_image_pulls_total", result="failure") == 1
        assert sample(samples, "kubesim_image_pulls_total", result="success") == 0
        assert sample(samples, "kubesim_image_pull_bytes_total") == 0

    def test_successful_pulls_add_their_image_size(self):
        metrics = Metrics()
        metrics.pull_finished("example.com/a:v1", 1.0, 5 * MI, ok=True)
        metrics.pull_finished("example.com/b:v1", 1.0, 7 * MI, ok=True)
        samples = scrape(metrics)
        assert sample(samples, "kubesim_image_pulls_total", result="success") == 2
        assert sample(samples, "kubesim_image_pull_bytes_total") == 12 * MI

    def test_images_are_never_labels(self):
        metrics = Metrics()
        metrics.pull_started("example.com/secret-project:v1")
        metrics.pull_finished("example.com/secret-project:v1", 1.0, MI, ok=True)
        body = metrics.render()[0].decode()
        assert "secret-project" not in body


# (policy, present_locally, pull_required) -> labels, from image_manager_test.go's
# expectedEnsureImageMetrics.
KUBELET_ENSURE_CASES = (
    ("IfNotPresent", False, True, ("ifnotpresent", "false", "true")),  # image missing, pull
    ("IfNotPresent", True, False, ("ifnotpresent", "true", "false")),  # present, don't pull
    ("Always", None, True, ("always", "unknown", "true")),  # Always never looks the image up
    ("Never", False, None, ("never", "false", "unknown")),  # missing, never pull
    ("IfNotPresent", None, None, ("ifnotpresent", "unknown", "unknown")),  # inspect failed
    ("Always", None, None, ("always", "unknown", "unknown")),  # invalid image name
)


class TestEnsureImageRequests:
    """`recordEnsureImageRequest`: lower-cased policy, true/false/unknown tri-states."""

    @pytest.mark.parametrize(("policy", "present", "required", "labels"), KUBELET_ENSURE_CASES)
    def test_labels_match_the_kubelets(self, policy, present, required, labels):
        metrics = Metrics()
        metrics.ensure_request(present_locally=present, pull_policy=policy, pull_required=required)
        pull_policy, present_locally, pull_required = labels
        samples = scrape(metrics)
        assert (
            sample(
                samples,
                ENSURE,
                pull_policy=pull_policy,
                present_locally=present_locally,
                pull_required=pull_required,
            )
            == 1
        )
        assert len([key for key in samples if key[0] == ENSURE]) == 1

    def test_family_as_the_kubelet_declares_it(self):
        metrics = Metrics()
        metrics.ensure_request(present_locally=True, pull_policy="Never", pull_required=False)
        family = families(metrics)["kubesim_image_manager_ensure_image_requests"]
        assert family.type == "counter"
        assert family.documentation == (
            "[ALPHA] Number of ensure-image requests processed by the kubelet."
        )
        (only,) = [s for s in family.samples if s.name == ENSURE]
        assert set(only.labels) == {"pull_policy", "present_locally", "pull_required"}

    def test_requests_with_the_same_labels_add_up(self):
        metrics = Metrics()
        for _ in range(3):
            metrics.ensure_request(
                present_locally=True, pull_policy="IfNotPresent", pull_required=False
            )
        metrics.ensure_request(
            present_locally=False, pull_policy="IfNotPresent", pull_required=True
        )
        samples = scrape(metrics)
        assert (
            sample(
                samples,
                ENSURE,
                pull_policy="ifnotpresent",
                present_locally="true",
                pull_required="false",
            )
            == 3
        )
        assert (
            sample(
                samples,
                ENSURE,
                pull_policy="ifnotpresent",
                present_locally="false",
                pull_required="true",
            )
            == 1
        )

    def test_policy_enum_is_accepted(self):
        metrics = Metrics()
        metrics.ensure_request(
            present_locally=None, pull_policy=PullPolicy.ALWAYS, pull_required=True
        )
        labels = {"pull_policy": "always", "present_locally": "unknown", "pull_required": "true"}
        assert sample(scrape(metrics), ENSURE, **labels) == 1

    def test_unknown_policy_is_refused(self):
        with pytest.raises(ValueError, match="Sometimes"):
            Metrics().ensure_request(
                present_locally=True, pull_policy="Sometimes", pull_required=False
            )


class TestEvents:
    def test_counts_by_type_and_reason_from_a_real_node(self):
        async def main():
            metrics = Metrics()
            node = _node(metrics, fail="example.com/broken:v1")
            node.add_pod(_pod("ok", "example.com/a:v1"))
            node.add_pod(_pod("bad", "example.com/broken:v1"))
            await asyncio.sleep(5)  # both first attempts done, before the 10 s requeue
            await node.stop()
            return scrape(metrics)

        samples = run_virtual(main())
        events = "kubesim_events_total"
        assert sample(samples, events, type="Normal", reason="Pulling") == 2
        assert sample(samples, events, type="Normal", reason="Pulled") == 1
        # The manager's "Failed to pull image" and the worker's "Error: ErrImagePull".
        assert sample(samples, events, type="Warning", reason="Failed") == 2


def _pod(name, image, policy=None):
    container = {"name": "c", "image": image}
    if policy:
        container["imagePullPolicy"] = policy
    return pod_from_manifest(
        {"metadata": {"name": name}, "spec": {"containers": [container]}}, uid=f"uid-{name}"
    )


def _node(metrics, *, images=("example.com/a:v1",), size=100 * MI, fail=None):
    refs = [parse_normalized(n).with_default_tag() for n in (*images, *([fail] if fail else []))]
    faults = [Fault(error="unauthorized", image=refs[-1])] if fail else []
    registry = SimulatedRegistry(
        Catalogue([make_image(ref, [(size, None)]) for ref in refs]),
        node_bandwidth=100 * MI,
        faults=faults,
    )
    node = Node(
        "node-0",
        registry,
        KubeletConfig(registry_pull_qps=0),  # serial pulls
        FanOut(EventLog(), metrics),
        store=ImageStore(),
        sync=SyncSettings(error_requeue_ns=10_000_000_000, jitter_factor=0.0),
        observer=metrics,
    )
    metrics.bind_node(node)
    return node


GAUGES = (
    "kubesim_image_pull_queue_depth",
    "kubesim_image_pulls_in_flight",
    "kubesim_image_backoff_entries",
    "kubesim_images_on_node",
    "kubesim_image_store_bytes",
)


def _gauges(metrics):
    samples = scrape(metrics)
    return {name: sample(samples, name) for name in GAUGES}


class TestNodeGauges:
    """Read from the node at scrape time: three 100 MiB pulls through a serial queue at 100 MiB/s."""

    IMAGES = ("example.com/a:v1", "example.com/b:v1", "example.com/c:v1")

    def test_queue_in_flight_and_store_follow_the_node(self):
        async def main():
            metrics = Metrics()
            node = _node(metrics, images=self.IMAGES)
            before = _gauges(metrics)
            for index, image in enumerate(self.IMAGES):
                node.add_pod(_pod(f"p{index}", image))
            await asyncio.sleep(0.5)
            during = _gauges(metrics)
            await asyncio.sleep(2.0)  # t = 2.5: the third pull is running
            late = _gauges(metrics)
            await asyncio.sleep(1.0)
            after = _gauges(metrics)
            await node.stop()
            return before, during, late, after, scrape(metrics)

        before, during, late, after, samples = run_virtual(main())
        assert before == dict.fromkeys(GAUGES, 0)
        assert during == {
            "kubesim_image_pull_queue_depth": 2,
            "kubesim_image_pulls_in_flight": 1,
            "kubesim_image_backoff_entries": 0,
            "kubesim_images_on_node": 0,
            "kubesim_image_store_bytes": 0,
        }
        assert late["kubesim_image_pull_queue_depth"] == 0
        assert late["kubesim_image_pulls_in_flight"] == 1
        assert late["kubesim_images_on_node"] == 2
        assert after == {
            "kubesim_image_pull_queue_depth": 0,
            "kubesim_image_pulls_in_flight": 0,
            "kubesim_image_backoff_entries": 0,
            "kubesim_images_on_node": 3,
            "kubesim_image_store_bytes": 300 * MI,
        }
        # The observer hooks saw the same pulls; exactly 100 MiB is in "10MB-100MB".
        assert sample(samples, "kubesim_image_pulls_started_total") == 3
        assert sample(samples, "kubesim_image_pulls_total", result="success") == 3
        assert sample(samples, "kubesim_image_pull_bytes_total") == 300 * MI
        assert sample(samples, PULL_DURATION + "_count", image_size_in_bytes="10MB-100MB") == 3

    def test_back_off_entries_count_failing_images(self):
        async def main():
            metrics = Metrics()
            node = _node(metrics, fail="example.com/broken:v1")
            node.add_pod(_pod("p", "example.com/broken:v1"))
            await asyncio.sleep(1)
            gauges = _gauges(metrics)
            await node.stop()
            return gauges, scrape(metrics)

        gauges, samples = run_virtual(main())
        assert gauges["kubesim_image_backoff_entries"] == 1
        assert gauges["kubesim_images_on_node"] == 0
        assert sample(samples, "kubesim_image_pulls_total", result="failure") == 1

    def test_gauges_are_gauges_and_absent_until_bound(self):
        metrics = Metrics()
        assert not set(GAUGES) & set(families(metrics))
        node = Node(
            "n",
            SimulatedRegistry(Catalogue()),
            KubeletConfig(registry_pull_qps=0),
            metrics,
            store=ImageStore(),
            observer=metrics,
        )
        metrics.bind_node(node)
        found = families(metrics)
        assert {name: found[name].type for name in GAUGES} == dict.fromkeys(GAUGES, "gauge")

    def test_one_node_per_metrics(self):
        metrics = Metrics()
        config = KubeletConfig(registry_pull_qps=0)
        first = Node("n1", SimulatedRegistry(Catalogue()), config, metrics, store=ImageStore())
        second = Node("n2", SimulatedRegistry(Catalogue()), config, metrics, store=ImageStore())
        metrics.bind_node(first)
        metrics.bind_node(first)  # binding the same node again is harmless
        with pytest.raises(ValueError, match="n1"):
            metrics.bind_node(second)

    def test_a_daemons_nodes_are_summed(self):
        """Several simulated nodes, one scrape target: each gauge is the sum over the nodes."""
        metrics = Metrics()
        config = KubeletConfig(registry_pull_qps=0)
        nodes = [
            Node(
                name, SimulatedRegistry(Catalogue()), config, metrics, store=ImageStore(capacity=c)
            )
            for name, c in (("n1", 10 * MI), ("n2", 30 * MI))
        ]
        for index, node in enumerate(nodes):
            layer = Layer(f"sha256:{index:064x}", (index + 1) * MI)
            node.preload([ImageRecord(f"sha256:{index + 10:064x}", (layer,))])
        metrics.bind_nodes(nodes)
        samples = scrape(metrics)
        assert sample(samples, "kubesim_image_fs_capacity_bytes") == 40 * MI
        assert sample(samples, "kubesim_images_on_node") == 2
        assert sample(samples, "kubesim_image_fs_used_bytes") == 3 * MI


class TestImageGC:
    """Image GC as the kubelet counts it, and the image filesystem it watches."""

    def test_collected_images_by_reason_and_the_disk(self):
        # Two unused 100 MiB images on a 200 MiB disk (100 %): the 5m run frees down to 80 %,
        # 40 MiB, which the first image removed covers.
        async def main():
            metrics = Metrics()
            registry = SimulatedRegistry(Catalogue())
            node = Node(
                "node-0",
                registry,
                KubeletConfig(registry_pull_qps=0),
                metrics,
                store=ImageStore(capacity=200 * MI),
            )
            metrics.bind_node(node)
            for n in range(2):
                layer = Layer(f"sha256:{n:064x}", 100 * MI)
                node.preload([ImageRecord(f"sha256:{n + 10:064x}", (layer,))])
            node.start()
            before = scrape(metrics)
            await asyncio.sleep(301)
            after = scrape(metrics)
            await node.stop()
            return before, after, families(metrics)

        before, after, found = run_virtual(main())
        gc_total = "kubelet_image_garbage_collected_total"
        assert sample(before, gc_total, reason="space") is None  # a CounterVec: no sample yet
        assert sample(after, gc_total, reason="space") == 1
        assert sample(after, gc_total, reason="age") is None
        assert found["kubelet_image_garbage_collected"].documentation.startswith("[ALPHA] ")
        assert sample(after, "kubesim_image_gc_runs_total") == 1
        assert sample(after, "kubesim_image_gc_bytes_freed_total") == 100 * MI
        assert sample(before, "kubesim_image_fs_used_bytes") == 200 * MI
        assert sample(after, "kubesim_image_fs_used_bytes") == 100 * MI
        assert sample(after, "kubesim_image_fs_capacity_bytes") == 200 * MI


class TestRegistries:
    def test_each_instance_has_its_own_registry_never_the_global_one(self):
        one, two = Metrics(), Metrics()
        assert one.registry is not two.registry
        assert prometheus_client.REGISTRY not in (one.registry, two.registry)
        one.pull_started("example.com/a:v1")
        assert sample(scrape(one), "kubesim_image_pulls_started_total") == 1
        assert sample(scrape(two), "kubesim_image_pulls_started_total") == 0
        assert (
            prometheus_client.REGISTRY.get_sample_value("kubesim_image_pulls_started_total") is None
        )

    def test_a_given_registry_is_used(self):
        registry = prometheus_client.CollectorRegistry()
        metrics = Metrics(registry)
        metrics.pull_started("example.com/a:v1")
        assert metrics.registry is registry
        assert registry.get_sample_value("kubesim_image_pulls_started_total") == 1


def test_bytes_downloaded_counts_only_layers_fetched():
    """Shared and already-present layers are not downloaded again, so they are not counted."""

    shared = "sha256:" + "c" * 64
    catalogue = Catalogue(
        [
            make_image(parse_normalized("example.com/a:v1"), [(100, shared), (10, None)]),
            make_image(parse_normalized("example.com/b:v1"), [(100, shared), (20, None)]),
        ]
    )

    async def main():
        metrics = Metrics()
        node = Node(
            "n",
            SimulatedRegistry(catalogue),
            KubeletConfig(registry_pull_qps=0),
            EventLog(),
            store=ImageStore(),
            observer=metrics,
        )
        metrics.bind_node(node)
        pod = pod_from_manifest(
            {
                "metadata": {"name": "p"},
                "spec": {
                    "containers": [
                        {"name": "a", "image": "example.com/a:v1"},
                        {"name": "b", "image": "example.com/b:v1"},
                    ]
                },
            },
            uid="u",
        )
        for container in pod.containers:
            await node.manager.ensure_image_exists(pod, container)
        return metrics.render()[0].decode()

    families = {f.name: f for f in text_string_to_metric_families(run_virtual(main()))}
    (sample,) = families["kubesim_image_bytes_downloaded"].samples
    assert sample.value == 130


def test_no_created_series_as_the_kubelet_exposes_none() -> None:
    """A kubelet's /metrics has no `_created` samples; ours neither (counters and histograms)."""
    metrics = Metrics()
    text = metrics.render()[0].decode()
    assert "kubesim_image_manager_ensure_image_requests_total" in text
    assert "_created" not in text
