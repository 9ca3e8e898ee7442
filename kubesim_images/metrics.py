"""Prometheus metrics for one simulated node, named and bucketed as the kubelet's own.

`Metrics` owns every series a node exposes on /metrics: the kubelet's image metrics where the
kubelet has them (`kubelet_image_pull_duration_seconds` with `GetImageSizeBucket` labels and the
kubelet's duration buckets), so dashboards and alerts written for real nodes work unchanged, and
`kubesim_`-prefixed series for what the simulated kubelet v1.32 does not export: what only the
simulation can see (queue depth, back-off entries, events), and
`kubesim_image_manager_ensure_image_requests_total`, the counter kubelets export only since
v1.35 as `kubelet_image_manager_ensure_image_requests_total` (same help and labels: a v1.32
node that exported it under the kubelet's name would be one no real cluster has). It is the
image manager's `PullObserver` and an `EventSink`; node state is read through snapshots at
scrape time. Each instance has its own registry so tests and several daemons in one process
never collide. Labels are bounded enums only: no image, pod or secret names.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from kubesim_images.events import Event
from kubesim_images.manager import PullObserver
from kubesim_images.node import Node
from kubesim_images.policy import PullPolicy
from kubesim_images.reasons import truncate_ms
from kubesim_images.snapshot import NodeSnapshot

# The kubelet's Go client exposes no `_created` series: neither do we, so a scrape reads as a
# kubelet's. (A process-wide switch of prometheus-client; this module is its only user here.)
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client

# component-base prefixes the HELP text of a metric with its stability level.
_ALPHA = "[ALPHA] "

_MIB = 1024 * 1024
_GIB = 1024 * _MIB

# pkg/kubelet/metrics/metrics.go `imagePullDurationBuckets` (seconds; +Inf is implied).
IMAGE_PULL_DURATION_BUCKETS: tuple[float, ...] = (
    1, 5, 10, 20, 30, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600,
)  # fmt: skip

# pkg/kubelet/metrics/metrics.go `imageSizeBuckets`: (exclusive lower bound in bytes, label).
IMAGE_SIZE_BUCKETS: tuple[tuple[int, str], ...] = (
    (0, "0-10MB"),
    (10 * _MIB, "10MB-100MB"),
    (100 * _MIB, "100MB-500MB"),
    (500 * _MIB, "500MB-1GB"),
    (1 * _GIB, "1GB-5GB"),
    (5 * _GIB, "5GB-10GB"),
    (10 * _GIB, "10GB-20GB"),
    (20 * _GIB, "20GB-30GB"),
    (30 * _GIB, "30GB-40GB"),
    (40 * _GIB, "40GB-60GB"),
    (60 * _GIB, "60GB-100GB"),
    (100 * _GIB, "GT100GB"),
)

# `recordEnsureImageRequest` lower-cases the policy: "always", "ifnotpresent", "never".
_POLICY_LABELS = frozenset(policy.value.lower() for policy in PullPolicy)


def image_size_bucket(size: int) -> str:
    """`metrics.GetImageSizeBucket`: "N/A" for 0, else the bucket whose bound `size` exceeds."""
    if size < 0:
        raise ValueError(f"image size must not be negative, got {size}")
    if size == 0:
        return "N/A"
    for lower_bound, label in reversed(IMAGE_SIZE_BUCKETS):
        if size > lower_bound:
            return label
    return ""  # unreachable: every positive size exceeds the first bound, as in the kubelet


def _tristate(value: bool | None) -> str:
    """`strconv.FormatBool` of a `*bool`, with "unknown" for nil."""
    if value is None:
        return "unknown"
    return "true" if value else "false"


class _NodeCollector:
    """Gauges and counters read from snapshots of the nodes taken at every scrape (nothing
    copied ahead to go stale), summed over the nodes of a daemon that simulates several: one
    scrape target, as one kubelet per node would be one per node, with the same metric names.

    Reads plain dicts of objects owned by the event loop, so it must be collected on the loop's
    thread (the daemon's aiohttp handler is).
    """

    _GAUGES: tuple[tuple[str, str], ...] = (
        ("kubesim_image_pull_queue_depth", "Pulls waiting for a pull slot on the node."),
        ("kubesim_image_pulls_in_flight", "Pulls holding a pull slot on the node."),
        (
            "kubesim_image_backoff_entries",
            "Image pull back-off entries held, expired ones included until the next GC.",
        ),
        ("kubesim_images_on_node", "Images in the node's image store."),
        ("kubesim_image_store_bytes", "Bytes of the layers in the node's store, shared ones once."),
        ("kubesim_image_fs_capacity_bytes", "Capacity of the node's image filesystem."),
        (
            "kubesim_image_fs_used_bytes",
            "Used bytes of the node's image filesystem: other writers' and the image layers'.",
        ),
    )
    _GC_TOTAL = "kubelet_image_garbage_collected"  # exposed with the `_total` suffix

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = tuple(nodes)

    @staticmethod
    def _values(snapshots: Sequence[NodeSnapshot]) -> tuple[float, ...]:
        totals = [0.0] * len(_NodeCollector._GAUGES)
        for snapshot in snapshots:
            for index, value in enumerate(
                (
                    len(snapshot.waiting),
                    len(snapshot.in_flight),
                    len(snapshot.backoff),
                    len(snapshot.images),
                    snapshot.disk.layer_bytes,
                    snapshot.disk.capacity,
                    snapshot.disk.used,
                )
            ):
                totals[index] += value
        return tuple(totals)

    def describe(self) -> Iterator[Metric]:
        # Lets the registry detect name clashes without reading the node at registration.
        for name, documentation in self._GAUGES:
            yield GaugeMetricFamily(name, documentation)
        yield CounterMetricFamily("kubesim_image_bytes_downloaded", "")
        yield CounterMetricFamily(self._GC_TOTAL, "", labels=("reason",))
        yield CounterMetricFamily("kubesim_image_gc_runs", "")
        yield CounterMetricFamily("kubesim_image_gc_bytes_freed", "")

    def collect(self) -> Iterator[Metric]:
        snapshots = [node.snapshot() for node in self.nodes]
        for (name, documentation), value in zip(self._GAUGES, self._values(snapshots), strict=True):
            yield GaugeMetricFamily(name, documentation, value=value)
        yield CounterMetricFamily(
            "kubesim_image_bytes_downloaded",
            "Layer bytes the node downloaded from registries (layers it had are not counted).",
            value=sum(s.disk.bytes_downloaded for s in snapshots),
        )
        collected = CounterMetricFamily(
            self._GC_TOTAL,
            f"{_ALPHA}Total number of images garbage collected by the kubelet, whether through "
            "disk usage or image age.",
            labels=("reason",),
        )
        # A CounterVec: a reason appears once an image has been collected for it.
        by_reason: dict[Any, int] = {}
        for snapshot in snapshots:
            for reason, count in snapshot.gc.collected_total:
                by_reason[reason] = by_reason.get(reason, 0) + count
        for reason, count in sorted(by_reason.items()):
            collected.add_metric((reason.value,), count)
        yield collected
        yield CounterMetricFamily(
            "kubesim_image_gc_runs",
            "Image GC runs on the node (every 5 minutes).",
            value=sum(s.gc.runs for s in snapshots),
        )
        yield CounterMetricFamily(
            "kubesim_image_gc_bytes_freed",
            "Bytes image GC gave back to the image filesystem (layers shared with a kept image "
            "stay).",
            value=sum(s.gc.bytes_freed for s in snapshots),
        )


class Metrics(PullObserver):
    """One node's metrics: pull observer, event sink and scrape-time view of the node."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # Never the process-global REGISTRY: two Metrics must be able to coexist.
        self.registry = registry if registry is not None else CollectorRegistry()
        self._nodes: tuple[Node, ...] = ()
        self._node_collector: _NodeCollector | None = None

        self.image_pull_duration = Histogram(
            "kubelet_image_pull_duration_seconds",
            f"{_ALPHA}Duration in seconds to pull an image.",
            labelnames=("image_size_in_bytes",),
            buckets=IMAGE_PULL_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.ensure_image_requests = Counter(
            "kubesim_image_manager_ensure_image_requests_total",
            f"{_ALPHA}Number of ensure-image requests processed by the kubelet.",
            labelnames=("pull_policy", "present_locally", "pull_required"),
            registry=self.registry,
        )
        self.pulls_started = Counter(
            "kubesim_image_pulls_started_total",
            "Image pulls started (after the Pulling event, before waiting for a pull slot).",
            registry=self.registry,
        )
        self.pulls = Counter(
            "kubesim_image_pulls_total",
            "Image pulls finished, by result (failure includes registry errors and pull QPS "
            "refusals).",
            labelnames=("result",),
            registry=self.registry,
        )
        self._pull_success = self.pulls.labels(result="success")
        self._pull_failure = self.pulls.labels(result="failure")
        self.pull_bytes = Counter(
            "kubesim_image_pull_bytes_total",
            "Sum of the image sizes of successful pulls, as the Pulled event reports them "
            "(not bytes transferred: layers already on the node are not downloaded again).",
            registry=self.registry,
        )
        self.events = Counter(
            "kubesim_events_total",
            "Events recorded for containers on the node, by type and reason.",
            labelnames=("type", "reason"),
            registry=self.registry,
        )
        # `emit` is on the hot path of every pull: keep label children, skip the label lookup.
        self._event_children: dict[tuple[str, str], Counter] = {}

    # PullObserver hooks.

    def pull_started(self, image: str) -> None:  # noqa: ARG002 - images are never labels
        self.pulls_started.inc()

    def pull_finished(self, image: str, seconds: float, size: int, *, ok: bool) -> None:  # noqa: ARG002
        """Count a finished pull; observe the duration histogram for successful ones only.

        The kubelet observes `time.Since(startTime).Truncate(time.Millisecond)`, where
        `startTime` is taken right after the Pulling event: the duration including the wait for
        a pull slot. `seconds` should be that duration.
        """
        if not ok:
            self._pull_failure.inc()
            return
        self._pull_success.inc()
        self.pull_bytes.inc(size)
        self.image_pull_duration.labels(image_size_in_bytes=image_size_bucket(size)).observe(
            truncate_ms(seconds)
        )

    def ensure_request(
        self, *, present_locally: bool | None, pull_policy: str, pull_required: bool | None
    ) -> None:
        """`recordEnsureImageRequest`: once per EnsureImageExists call, whatever its outcome.

        None stands for the kubelet's nil `*bool` and is exported as "unknown" (the check was
        never reached, or, for `present_locally` under policy Always, never made).
        """
        policy = str(pull_policy).lower()
        if policy not in _POLICY_LABELS:
            raise ValueError(f"unknown image pull policy {pull_policy!r}")
        self.ensure_image_requests.labels(
            pull_policy=policy,
            present_locally=_tristate(present_locally),
            pull_required=_tristate(pull_required),
        ).inc()

    # EventSink.

    def emit(self, event: Event) -> None:
        key = (str(event.type), str(event.reason))
        child = self._event_children.get(key)
        if child is None:
            child = self._event_children[key] = self.events.labels(type=key[0], reason=key[1])
        child.inc()

    # Node state, read at scrape time.

    def bind_node(self, node: Node) -> None:
        """Expose the node's queue, back-off and store gauges; one node per Metrics."""
        self.bind_nodes([node])

    def bind_nodes(self, nodes: Sequence[Node]) -> None:
        """Expose the gauges of a daemon's nodes, summed; bound once per Metrics."""
        if self._nodes == tuple(nodes):
            return
        if self._nodes:
            raise ValueError(f"metrics are already bound to node {self._nodes[0].name!r}")
        collector = _NodeCollector(nodes)
        self.registry.register(collector)
        self._nodes, self._node_collector = tuple(nodes), collector

    # Exposition.

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of this registry and its content type."""
        return _generate_latest(self.registry), CONTENT_TYPE_LATEST
