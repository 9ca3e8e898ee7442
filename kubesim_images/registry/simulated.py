"""The simulated registry: a real backend whose timing follows SPEC section 5 exactly.

A pull is one resolve round trip (`latency`), then faults are judged, then one download flow of
the layers the puller asks for (those the node lacks: `pulling` decides that, not the registry).
Flows share bandwidth max-min fairly (`flows.FlowNetwork`) under per-node downlinks and the
registry's egress; one loop timer tracks the earliest completion, so the cost per pull stays
constant however many flows run. Both steps can be started from callbacks (`CallbackBackend`).
Faults and rate limits are deterministic from the seed. Error texts are containerd's
(`registryerrors`, shared with the OCI backend), so events read like a real node's.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kubesim_images.clock import to_ns
from kubesim_images.errors import RegistryError
from kubesim_images.flows import FlowNetwork
from kubesim_images.reference import ImageReference
from kubesim_images.registry.base import LayerSink, Manifest, Outcome, PullRequest
from kubesim_images.registry.catalogue import Catalogue, SimImage
from kubesim_images.registryerrors import registry_error
from kubesim_images.scheduler import LoopScheduler, Scheduler, Timer
from kubesim_images.store import ImageRecord, Layer

# The simulated catalogue has one platform per image: the nodes'.
_PLATFORM = "linux/amd64"


@dataclass(frozen=True, slots=True)
class Fault:
    """Fail matching pulls: always, the first `fail_first`, and/or with `probability`."""

    error: str
    image: ImageReference | None = None  # None: every image; no tag/digest: every tag
    fail_first: int | None = None
    probability: float | None = None

    def matches(self, ref: ImageReference) -> bool:
        if self.image is None:
            return True
        if self.image.name != ref.name:
            return False
        if self.image.digest:
            return self.image.digest == ref.digest
        if self.image.tag:
            return self.image.tag == (ref.tag or "latest") and not ref.digest
        return True


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`pulls` accepted per `window` seconds (fixed windows from time 0), then 429s."""

    pulls: int
    window: float  # seconds
    per_node: bool = False


class SimulatedRegistry:
    def __init__(
        self,
        catalogue: Catalogue,
        *,
        latency: float = 0.0,
        bandwidth: float = math.inf,
        node_bandwidth: float = math.inf,
        faults: Sequence[Fault] = (),
        rate_limit: RateLimit | None = None,
        seed: int = 0,
        scheduler: Scheduler | None = None,
    ) -> None:
        # Every node's pulls share the registry, so they share its scheduler (its timers).
        self.scheduler: Scheduler = LoopScheduler() if scheduler is None else scheduler
        self.catalogue = catalogue
        self.latency = latency
        self._latency_ns = to_ns(latency)
        self._window_ns = to_ns(rate_limit.window) if rate_limit is not None else 0
        self._node_bandwidth = node_bandwidth
        self._faults = list(faults)
        self._fault_hits = [0] * len(self._faults)
        self._rate_limit = rate_limit
        self._window_counts: dict[tuple[str, int], int] = {}
        self._rng = random.Random(seed)
        self._network = FlowNetwork(bandwidth)
        self._known_nodes: set[str] = set()
        # Per flow (keyed by pull id): what to call when its download completes, and its size.
        self._on_done: dict[int, tuple[Callable[[], None], int]] = {}
        self._timer: Timer | None = None
        self._timer_at = -1
        self.bytes_sent = 0
        self._manifests: dict[tuple[str, str | None, str | None], Manifest] = {}

    def set_node_bandwidth(self, node: str, bandwidth: float) -> None:
        self._known_nodes.add(node)
        self._network.set_node_bandwidth(node, bandwidth)

    # -- resolve ----------------------------------------------------------------------------
    async def resolve(self, request: PullRequest) -> Manifest:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.begin_resolve(request, future.set_result)
        outcome = await future
        if isinstance(outcome, RegistryError):
            raise outcome
        return outcome

    def begin_resolve(self, request: PullRequest, done: Callable[[Outcome], None]) -> None:
        """One round trip (`latency`), then the registry's answer: from a timer, so a pull
        suspends once. The answer is judged when the round trip ends, as a registry would."""
        if self._latency_ns > 0:
            scheduler = self.scheduler
            scheduler.call_at(scheduler.now_ns + self._latency_ns, self._answer, request, done)
        else:
            self._answer(request, done)

    def _answer(self, request: PullRequest, done: Callable[[Outcome], None]) -> None:
        try:
            outcome: Outcome = self._resolve(request)
        except RegistryError as exc:
            outcome = exc
        done(outcome)

    def _resolve(self, request: PullRequest) -> Manifest:
        """What the round trip learns: the image, or the registry's error."""
        ref = request.ref
        image = self.catalogue.resolve(ref)
        if image is None:
            raise registry_error("manifest unknown", ref)
        if image.auth is not None:
            credential = request.credential
            if credential is None or (credential.username, credential.password) != image.auth:
                raise registry_error("unauthorized", ref)
        if self._faults or self._rate_limit is not None:
            self._judge_faults(ref, request.node)
        return self._manifest(image, ref)

    # -- fetch ------------------------------------------------------------------------------
    async def fetch(
        self,
        request: PullRequest,
        manifest: Manifest,  # noqa: ARG002 - the layers say it all: no bytes, no sink
        layers: Sequence[Layer],
        sink: LayerSink | None,  # noqa: ARG002
    ) -> None:
        if not layers:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.begin_fetch(request, layers, lambda: _resolve_future(future))
        try:
            await future
        except asyncio.CancelledError:
            self.cancel_fetch(request)
            raise

    def begin_fetch(
        self,
        request: PullRequest,
        layers: Sequence[Layer],
        done: Callable[[], None],
    ) -> None:
        """One download flow of `layers`, sharing bandwidth with the others in flight."""
        size = sum(layer.size for layer in layers)
        if size <= 0:
            done()
            return
        node = request.node
        if node not in self._known_nodes:
            self.set_node_bandwidth(node, self._node_bandwidth)
        self._on_done[request.pull_id] = (done, size)
        self._network.start(request.pull_id, node, size, self.scheduler.now_ns)
        self._reschedule()

    def cancel_fetch(self, request: PullRequest) -> None:
        if self._on_done.pop(request.pull_id, None) is not None:
            self._network.cancel(request.pull_id, self.scheduler.now_ns)
            self._reschedule()

    def _manifest(self, image: SimImage, ref: ImageReference) -> Manifest:
        # One manifest per (image, tag pulled), shared by every pull of it: the store copies the
        # names into its own record and never changes the one it is given.
        key = (image.config_digest, None if ref.digest else ref.name, ref.tag)
        manifest = self._manifests.get(key)
        if manifest is None:
            tags = [f"{image.ref.name}:{image.ref.tag}"] if image.ref.tag else []
            if ref.tag and not ref.digest:
                tags.append(f"{ref.name}:{ref.tag}")
            record = ImageRecord(
                id=image.config_digest,
                layers=image.layers,
                repo_tags=list(dict.fromkeys(tags)),
                repo_digests=[image.repo_digest],
            )
            manifest = self._manifests[key] = Manifest(record, _PLATFORM)
        return manifest

    def _judge_faults(self, ref: ImageReference, node: str) -> None:
        for index, fault in enumerate(self._faults):
            if not fault.matches(ref):
                continue
            self._fault_hits[index] += 1
            if fault.fail_first is not None and self._fault_hits[index] <= fault.fail_first:
                raise registry_error(fault.error, ref)
            if fault.probability is not None:
                if self._rng.random() < fault.probability:
                    raise registry_error(fault.error, ref)
            elif fault.fail_first is None:
                raise registry_error(fault.error, ref)
        limit = self._rate_limit
        if limit is not None:
            window = self.scheduler.now_ns // self._window_ns
            key = (node if limit.per_node else "", window)
            used = self._window_counts.get(key, 0)
            if used >= limit.pulls:
                raise registry_error("toomanyrequests", ref)
            self._window_counts[key] = used + 1

    def _reschedule(self) -> None:
        upcoming = self._network.next_completion()
        if upcoming is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                self._timer_at = -1
            return
        when = upcoming[0]
        if self._timer is not None:
            if when >= self._timer_at:
                # The armed timer fires no later than needed; when it does, it re-arms for the
                # then-earliest completion. Saves a cancel and a heap push per flow start.
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.scheduler.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = -1
        for flow_id in self._network.complete_due(self.scheduler.now_ns):
            arrived = self._on_done.pop(flow_id, None)
            if arrived is not None:
                self.bytes_sent += arrived[1]
                arrived[0]()
        self._reschedule()

    def progress(self, pull_id: int) -> tuple[float, int] | None:
        if pull_id not in self._on_done:
            return None
        return self._network.progress(pull_id, self.scheduler.now_ns)

    def active_flows(self) -> int:
        return len(self._network)


def _resolve_future(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def preload(images: Iterable[SimImage]) -> list[ImageRecord]:
    """Records for images present on a node at time 0 (`preloadedImages`)."""
    return [
        ImageRecord(
            id=image.config_digest,
            layers=image.layers,
            repo_tags=[f"{image.ref.name}:{image.ref.tag}"] if image.ref.tag else [],
            repo_digests=[image.repo_digest],
        )
        for image in images
    ]
