"""The simulated registry: a real backend whose timing follows SPEC section 5 exactly.

A pull is one resolve round trip (`latency`), then faults are judged, then one download flow of
the layers the node lacks. Flows share bandwidth max-min fairly (`flows.FlowNetwork`) under
per-node downlinks and the registry's egress; one loop timer tracks the earliest completion, so
the cost per pull stays constant however many flows run. Faults and rate limits are
deterministic from the seed. Error texts are containerd's (`registryerrors`, shared with the OCI
backend), so events read like a real node's.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kubesim_images.clock import LoopClock, call_at_ns, now_ns, to_ns
from kubesim_images.errors import RegistryError
from kubesim_images.flows import FlowNetwork
from kubesim_images.reference import ImageReference
from kubesim_images.registry.base import PullRequest
from kubesim_images.registry.catalogue import Catalogue, SimImage
from kubesim_images.registryerrors import failed_to_pull, registry_error
from kubesim_images.store import ImageRecord, Layer, NoSpaceLeftError


def no_space_error(exc: NoSpaceLeftError, ref: ImageReference) -> RegistryError:
    """containerd's pull error when the content store cannot write a fetched layer."""
    return RegistryError(failed_to_pull(ref, f"failed to copy: {exc}"), code=exc.code)


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
    ) -> None:
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
        # Per flow (keyed by pull id): what to do when its download completes.
        self._on_done: dict[int, Callable[[], None]] = {}
        # Layers being downloaded per node, and by which pull (callback-driven pulls).
        self._downloading: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._fetching: dict[int, tuple[str, list[Layer], asyncio.Future[None]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = -1
        self.bytes_sent = 0
        self._clock = LoopClock()
        self._records: dict[tuple[str, str | None, str | None], ImageRecord] = {}

    def set_node_bandwidth(self, node: str, bandwidth: float) -> None:
        self._known_nodes.add(node)
        self._network.set_node_bandwidth(node, bandwidth)

    async def pull(self, request: PullRequest) -> ImageRecord:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.begin(request, future)
        return await self.finish(request, future)

    def begin(self, request: PullRequest, future: asyncio.Future[Any]) -> None:
        """Start the round trip; its end and the download are driven by callbacks (`_arrived`,
        `_downloaded`) that settle `future`, so a pull suspends once, on it. A pull cancelled
        meanwhile leaves its round trip's timer to find the future done and do nothing."""
        if self._latency_ns > 0:
            loop = future.get_loop()
            call_at_ns(loop, self._clock.now() + self._latency_ns, self._arrived, request, future)
        else:
            self._arrived(request, future)

    async def finish(self, request: PullRequest, future: asyncio.Future[Any]) -> ImageRecord:
        """The pull `begin` started, to its record. One that must wait for layers another pull
        on the node is downloading falls back to `_fetch_layers`."""
        try:
            outcome: SimImage | ImageRecord = await future
        except asyncio.CancelledError:
            self._abandon(request.pull_id, future.get_loop())
            raise
        if isinstance(outcome, ImageRecord):
            return outcome
        await self._fetch_layers(request, outcome)
        return self._record(outcome, request.ref)

    def _resolve(self, request: PullRequest) -> SimImage:
        """What the round trip learns: the image, or the registry's error."""
        ref = request.ref
        image = self.catalogue.resolve(ref)
        if image is None:
            raise registry_error("manifest unknown", ref)
        if image.auth is not None:
            credential = request.credential
            if credential is None or (credential.username, credential.password) != image.auth:
                raise registry_error("unauthorized", ref)
        self._judge_faults(ref, request.node)
        return image

    def _arrived(
        self, request: PullRequest, future: asyncio.Future[SimImage | ImageRecord]
    ) -> None:
        """The round trip is over: judge it, then start the download of what the node lacks."""
        if future.done():
            return
        try:
            image = self._resolve(request)
        except RegistryError as exc:
            future.set_exception(exc)
            return
        node, store = request.node, request.store
        missing = store.missing_layers(image.layers)
        if not missing:
            future.set_result(self._record(image, request.ref))
            return
        downloading = self._downloading
        if any((node, layer.digest) in downloading for layer in missing):
            future.set_result(image)  # shares a download in flight: the general path
            return
        size = sum(layer.size for layer in missing)
        done: asyncio.Future[None] = future.get_loop().create_future()
        for layer in missing:
            downloading[(node, layer.digest)] = done
        self._fetching[request.pull_id] = (node, missing, done)
        if size <= 0:
            self._downloaded(request, image, future)
            return
        self._start_flow(
            request.pull_id,
            node,
            size,
            lambda: self._downloaded(request, image, future, size),
            future.get_loop(),
        )

    def _downloaded(
        self,
        request: PullRequest,
        image: SimImage,
        future: asyncio.Future[SimImage | ImageRecord],
        size: int = 0,
    ) -> None:
        self.bytes_sent += size
        _, layers, _ = self._fetching[request.pull_id]
        try:
            request.store.add_layers(layers)
        except NoSpaceLeftError as exc:
            self._release(request.pull_id)
            if not future.done():
                future.set_exception(no_space_error(exc, request.ref))
            return
        self._release(request.pull_id)
        if not future.done():
            future.set_result(self._record(image, request.ref))

    def _release(self, pull_id: int) -> None:
        """Layers no longer being downloaded by this pull; whoever waited on them looks again."""
        entry = self._fetching.pop(pull_id, None)
        if entry is None:
            return
        node, layers, done = entry
        for layer in layers:
            del self._downloading[(node, layer.digest)]
        done.set_result(None)

    def _abandon(self, pull_id: int, loop: asyncio.AbstractEventLoop) -> None:
        """A cancelled pull stops its download and hands its layers back."""
        if self._on_done.pop(pull_id, None) is not None:
            self._network.cancel(pull_id, now_ns(loop))
            self._reschedule(loop)
        self._release(pull_id)

    async def _fetch_layers(self, request: PullRequest, image: SimImage) -> None:
        """Download the layers the node lacks; wait for those another pull is downloading.

        Like containerd's content store, a layer being written by one pull is not fetched again
        by a concurrent pull on the same node: the second waits for it. Loops because a layer
        whose download was cancelled must then be fetched by whoever still needs it.
        """
        node, store = request.node, request.store
        while missing := store.missing_layers(image.layers):
            own = [layer for layer in missing if (node, layer.digest) not in self._downloading]
            waits = [
                self._downloading[(node, layer.digest)]
                for layer in missing
                if (node, layer.digest) in self._downloading
            ]
            if own:
                loop = asyncio.get_running_loop()
                done: asyncio.Future[None] = loop.create_future()
                for layer in own:
                    self._downloading[(node, layer.digest)] = done
                size = sum(layer.size for layer in own)
                try:
                    if size > 0:
                        await self._transfer(request.pull_id, node, size)
                        self.bytes_sent += size
                    try:
                        store.add_layers(own)
                    except NoSpaceLeftError as exc:
                        raise no_space_error(exc, request.ref) from None
                finally:
                    for layer in own:
                        del self._downloading[(node, layer.digest)]
                    done.set_result(None)
            for waited in waits:
                await asyncio.shield(waited)

    def _record(self, image: SimImage, ref: ImageReference) -> ImageRecord:
        # One record per (image, tag pulled), shared by every pull of it: the store copies the
        # names into its own record and never changes the one it is given.
        key = (image.config_digest, None if ref.digest else ref.name, ref.tag)
        record = self._records.get(key)
        if record is None:
            tags = [f"{image.ref.name}:{image.ref.tag}"] if image.ref.tag else []
            if ref.tag and not ref.digest:
                tags.append(f"{ref.name}:{ref.tag}")
            record = self._records[key] = ImageRecord(
                id=image.config_digest,
                layers=image.layers,
                repo_tags=list(dict.fromkeys(tags)),
                repo_digests=[image.repo_digest],
            )
        return record

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
            window = self._clock.now() // self._window_ns
            key = (node if limit.per_node else "", window)
            used = self._window_counts.get(key, 0)
            if used >= limit.pulls:
                raise registry_error("toomanyrequests", ref)
            self._window_counts[key] = used + 1

    def _start_flow(
        self,
        pull_id: int,
        node: str,
        size: int,
        on_done: Callable[[], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        if node not in self._known_nodes:
            self.set_node_bandwidth(node, self._node_bandwidth)
        self._on_done[pull_id] = on_done
        self._network.start(pull_id, node, size, self._clock.now())
        self._reschedule(loop)

    async def _transfer(self, pull_id: int, node: str, size: int) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._start_flow(pull_id, node, size, lambda: _resolve_future(future), loop)
        try:
            await future
        except asyncio.CancelledError:
            if self._on_done.pop(pull_id, None) is not None:
                self._network.cancel(pull_id, now_ns(loop))
                self._reschedule(loop)
            raise

    def _reschedule(self, loop: asyncio.AbstractEventLoop) -> None:
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
        self._timer = call_at_ns(loop, when, self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._timer_at = -1
        for flow_id in self._network.complete_due(self._clock.now()):
            on_done = self._on_done.pop(flow_id, None)
            if on_done is not None:
                on_done()
        self._reschedule(loop)

    def progress(self, pull_id: int) -> tuple[float, int] | None:
        if pull_id not in self._on_done:
            return None
        return self._network.progress(pull_id, now_ns())

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
