"""Runs a scenario's variants, each on its own virtual-time loop, and collects the results.

A variant builds its node pools and simulated registry, preloads images, starts the nodes (image
GC runs every 5 minutes from there), creates the workload's pods at their `at` times on the node
`placement.Placer` picks (`spec.nodeName`, a `nodeSelector` on the pools' labels, else spread
evenly, which is round-robin in workload order; no node: Pending with `FailedScheduling`),
deletes those with a `lifetime` when it ends, and stops when every pod has its images (or was
deleted first) or the `duration` cap is reached, whichever comes first. The
nodes' disks and images at the end are kept for the report. Nothing here reads the wall clock
except to report how long the run took (`wallSeconds`), which is the only field allowed to
differ between two runs of the same file.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from kubesim_images import backends
from kubesim_images.clock import WallClock, collect_cycles, fewer_collections, now_ns
from kubesim_images.credentials import KeyringProvider, ProviderChain
from kubesim_images.events import Event, EventLog, scheduler_event
from kubesim_images.keyring import Keyring
from kubesim_images.manager import PullObserver
from kubesim_images.node import Node
from kubesim_images.nodegc import GCTicker
from kubesim_images.nodepool import NodePool
from kubesim_images.placement import Placer, Unschedulable
from kubesim_images.pod import Pod
from kubesim_images.podworkers import CredentialLookup, PodStatus
from kubesim_images.reasons import Reason
from kubesim_images.registry.simulated import preload
from kubesim_images.scenario.model import Scenario, VariantSpec
from kubesim_images.scheduler import EventCore, LoopScheduler, Scheduler, Timer


class ImageReport(NamedTuple):
    # Named tuples, not frozen dataclasses: a report of 100,000 nodes makes a million, at a
    # fifth of the cost.
    name: str  # the first repo tag (else repo digest, else id)
    id: str
    size: int
    last_used: int | None  # ns; None: never seen in use by image GC's sweeps
    first_detected: int | None  # ns; None: not yet swept


class NodeReport(NamedTuple):
    """A node at the end of a run: its disk, its images and what image GC did."""

    name: str
    capacity: int
    used: int
    images: tuple[ImageReport, ...]
    gc_runs: int
    images_collected: int
    bytes_freed: int
    re_pulls: int
    disk: tuple[tuple[int, int, int], ...] = ()  # (t, used before, used after) per GC period


def node_report(node: Node) -> NodeReport:
    snapshot = node.snapshot(queue=False)
    images = [
        ImageReport(
            (image.repo_tags or image.repo_digests or (image.id,))[0],
            image.id,
            image.size,
            image.last_used,
            image.first_detected,
        )
        for image in snapshot.images
    ]
    images.sort(key=lambda i: (i.name, i.id))
    gc = snapshot.gc
    return NodeReport(
        name=snapshot.node,
        capacity=snapshot.disk.capacity,
        used=snapshot.disk.used,
        images=tuple(images),
        gc_runs=gc.runs,
        images_collected=gc.images_collected,
        bytes_freed=gc.bytes_freed,
        re_pulls=gc.re_pulls,
        disk=gc.disk,
    )


@dataclass(slots=True)
class VariantResult:
    name: str
    spec: VariantSpec
    pods: list[PodStatus]
    events: list[Event]
    simulated_ns: int
    wall_seconds: float
    bytes_pulled: int
    counts: dict[Reason, int] = field(default_factory=dict)
    pulls: int = 0  # pulls started (QPS-refused ones included), as the pull observer saw them
    failed_pulls: int = 0
    registry_stats: dict[str, Any] | None = None  # real registries: requests, codes, bytes
    nodes: list[NodeReport] = field(default_factory=list)
    # each successful pull's own duration (queue wait excluded), seconds to the millisecond
    pull_seconds: list[float] = field(default_factory=list)
    model: dict[str, Any] | None = None  # --compare of a real registry: how the model was made


# Failed pulls and deleted pods (each leaves a cycle or two: an exception and its traceback)
# between two passes of the cyclic collector, which is off during a run: at most some tens of
# megabytes of garbage waiting, and one pass per so many costs little.
_CYCLES_PER_COLLECTION = 20_000


class PullTally(PullObserver):
    """Counts pull outcomes where they happen, not by reading event texts; every so many
    failures, frees the cycles they left (`clock.collect_cycles`)."""

    __slots__ = ("durations", "failed", "started")

    def __init__(self) -> None:
        self.started = 0
        self.failed = 0
        self.durations: list[float] = []  # seconds, successful pulls (queue wait excluded)

    def pull_started(self, image: str) -> None:  # noqa: ARG002 - only counted
        self.started += 1

    def pull_finished(
        self,
        image: str,  # noqa: ARG002 - only counted
        seconds: float,
        size: int,  # noqa: ARG002
        *,
        ok: bool,
    ) -> None:
        if ok:
            self.durations.append(seconds)
        else:
            self.failed += 1
            if not self.failed % _CYCLES_PER_COLLECTION:
                collect_cycles()


@dataclass(slots=True)
class ScenarioResult:
    scenario: Scenario
    variants: list[VariantResult]
    # --compare: each variant run again in virtual time (its model), in the same order
    virtual: list[VariantResult] | None = None


def run_scenario(
    scenario: Scenario,
    *,
    variant: str | None = None,
    real_time: bool = False,
    compare: bool = False,
    workdir: Path | None = None,
) -> ScenarioResult:
    """`workdir`: where real pulls keep each node's content store (`<variant>/<node>`, kept
    after the run, e.g. to verify it); a temporary directory by default. `compare` (with
    `real_time`) also runs each variant's model in virtual time (scenario/modelof.py)."""
    chosen = [v for v in scenario.variants if variant is None or v.name == variant]
    if not chosen:
        names = ", ".join(v.name for v in scenario.variants)
        raise KeyError(f"no variant named {variant!r} in {scenario.source} (variants: {names})")
    if compare and not real_time:
        raise ValueError("--compare puts a virtual run beside a real-time one: use --real-time")
    virtual = None
    if compare:
        # The models first, with a client of their own: their manifest requests are not
        # counted in the real run's registry figures.
        from kubesim_images.scenario.modelof import model_of  # noqa: PLC0415 - aiohttp

        virtual = []
        for spec in chosen:
            model, info = model_of(spec, _credential_lookup(spec))
            run = run_variant(model)
            run.model = info
            virtual.append(run)
    return ScenarioResult(
        scenario,
        [
            run_variant(spec, real_time=real_time, workdir=workdir / spec.name if workdir else None)
            for spec in chosen
        ],
        virtual,
    )


def run_variant(
    spec: VariantSpec, *, real_time: bool = False, workdir: Path | None = None
) -> VariantResult:
    """In virtual time, on the lean event core, or on the wall clock (`--real-time`, which
    real registries need), on an asyncio loop; the same rules run either way."""
    if spec.oci is not None and not real_time:
        raise ValueError(f"variant {spec.name}: registry type oci pulls for real: use --real-time")
    started = time.perf_counter()  # wall time of the run, reported and never used in logic
    if real_time:
        # Real registries need aiohttp and the content store; a simulated run imports neither.
        from kubesim_images.scenario.realtime import run_real_time  # noqa: PLC0415

        result = run_real_time(_simulate_on_loop(spec, workdir))
    else:
        result = _simulate_virtual(spec)
    result.wall_seconds = time.perf_counter() - started
    return result


def _credential_lookup(spec: VariantSpec) -> CredentialLookup | None:
    """Pod pull secrets first, then the nodes' docker config, as the kubelet's union keyring."""
    if not spec.secrets and not spec.node_credentials:
        return None
    node = KeyringProvider(Keyring(spec.node_credentials))
    chains: dict[tuple[str, tuple[str, ...]], ProviderChain] = {}

    def lookup(pod: Pod) -> ProviderChain:
        key = (pod.namespace, pod.image_pull_secrets)
        chain = chains.get(key)
        if chain is None:
            # A secret the pod names but the scenario lacks is skipped, as the kubelet does.
            pod_keyring = Keyring(
                entry
                for name in pod.image_pull_secrets
                for entry in spec.secrets.get((pod.namespace, name), ())
            )
            chain = chains[key] = ProviderChain(KeyringProvider(pod_keyring), node)
        return chain

    return lookup


def _simulate_virtual(spec: VariantSpec) -> VariantResult:
    """The variant in virtual time, on an `EventCore`: no asyncio at all."""
    core = EventCore()
    registries = backends.build(
        spec.registry,
        None,
        seed=spec.seed,
        node_bandwidth=spec.node_bandwidth,
        content_root=Path,
        now=lambda: 0.0,  # only real pulls' records are stamped
        scheduler=core,
    )
    run = _Run(spec, registries, core, core.stop_after_instant)
    with fewer_collections():
        run.start()
        core.run()
        result = run.finish()
    result.bytes_pulled = registries.bytes_fetched
    return result


async def _simulate_on_loop(spec: VariantSpec, workdir: Path | None) -> VariantResult:
    """The variant on the running asyncio loop (the wall clock: real registries)."""
    with contextlib.ExitStack() as stack:
        if spec.oci is not None and workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kubesim-")))
        root = workdir if workdir is not None else Path()
        loop = asyncio.get_running_loop()
        scheduler = LoopScheduler(loop)
        registries = backends.build(
            spec.registry,
            spec.oci,
            seed=spec.seed,
            node_bandwidth=spec.node_bandwidth,
            content_root=lambda node: root / node,
            now=lambda: WallClock(loop).epoch(now_ns(loop)),  # real pulls' records only
            scheduler=scheduler,
        )
        try:
            ended = loop.create_future()
            run = _Run(
                spec,
                registries,
                scheduler,
                lambda: None if ended.done() else ended.set_result(None),
            )
            run.start()
            try:
                await ended
            finally:
                for node in run.nodes.values():
                    await node.stop()
            result = run.finish()
        finally:
            await registries.close()
        result.bytes_pulled = registries.bytes_fetched
        if spec.oci is not None:
            result.registry_stats = registries.stats()
        return result


class _Run:
    """One variant's run on a scheduler: its nodes, its pods created at their `at` times on
    the node `Placer` picks, deleted when their `lifetime` ends; `on_end` is called once every
    pod has its images (or was deleted first), or when the duration cap is reached."""

    def __init__(
        self,
        spec: VariantSpec,
        registries: backends.Registries,
        scheduler: Scheduler,
        on_end: Callable[[], None],
    ) -> None:
        self.spec = spec
        self.registries = registries
        self.scheduler = scheduler
        self._on_end = on_end
        self.log = EventLog()
        self.tally = PullTally()
        self.nodes: dict[str, Node] = {}
        self.statuses: list[PodStatus] = []
        self._total = len(spec.pods)
        self._settled = 0  # pods that got their images, or were deleted before
        self._deleted = 0
        self._ended = False
        self._deadline: Timer | None = None
        self._creator: Timer | None = None
        self._placer: Placer | None = None

    def start(self) -> None:
        spec = self.spec
        rng = random.Random(spec.seed)
        credentials = _credential_lookup(spec)
        # The nodes start now, one after another, and nothing else sets a timer meanwhile:
        # their GC periods end together, on one timer per instant.
        ticker = GCTicker(self.scheduler)
        with ticker.together():
            for pool in spec.pools:
                preloaded = preload(pool.preloaded)
                for name in pool.node_names():
                    node = self._node(pool, name, rng, credentials, ticker)
                    node.preload(preloaded, 0)
                    node.start()
                    self.nodes[name] = node
        # Pods already placed count, deleted or not: with no node selectors this is exactly
        # the round-robin over nodes in workload order that scenario files promise (SPEC 8).
        self._placer = Placer(
            [(name, pool.labels) for pool in spec.pools for name in pool.node_names()]
        )
        # Pods are created from the next turn on (as a task started now would run).
        self.scheduler.call_soon(self._create_from, 0)
        # The cap is one more timer: whatever else is due at that very nanosecond and was
        # scheduled before it still runs (the tie rule).
        self._deadline = self.scheduler.call_at(spec.duration, self._end)
        if not self._total:
            # Nothing to wait for: the run ends once the (empty) workload is created.
            self.scheduler.call_soon(self._end)

    def _node(
        self,
        pool: NodePool,
        name: str,
        rng: random.Random,
        credentials: CredentialLookup | None,
        ticker: GCTicker,
    ) -> Node:
        spec, registries = self.spec, self.registries
        backend, sink = registries.node(name, pool.bandwidth, spec.platform(pool))
        store = pool.image_store()
        return Node(
            name,
            backend,
            pool.kubelet,
            self.log,
            sync=spec.sync,
            rng=rng,
            on_ready=self._ready,
            credentials=credentials,
            observer=self.tally,
            store=store,
            # With --real-time and store: keep, image GC works on the node's content store.
            runtime=registries.runtime(
                name,
                store,
                capacity=pool.image_fs.capacity,
                other_usage=pool.image_fs.other_usage,
                pinned=[pool.sandbox_image],
            ),
            sink=sink,
            scheduler=self.scheduler,
            gc_ticker=ticker,
        )

    def _create_from(self, index: int) -> None:
        """Create the pods due now, from `index` on; wait for the next one's time."""
        self._creator = None
        scheduler = self.scheduler
        pods = self.spec.pods
        placer = self._placer
        assert placer is not None  # noqa: S101 - made by start
        now = scheduler.now_ns
        for position in range(index, len(pods)):
            at, pod = pods[position]
            if at > now:
                # Woken in the turn after the timer fires, as a task sleeping until then.
                self._creator = scheduler.call_at(
                    at, scheduler.call_soon, self._create_from, position
                )
                return
            target = placer.place(pod.node_name or None, pod.node_selector, pod.node_affinity)
            if isinstance(target, Unschedulable):
                # Pending for good: no node takes it, so it never settles the run either.
                self.statuses.append(PodStatus(pod, "", now))
                if target.message is not None:
                    self.log.emit(scheduler_event(now, pod, target.message))
                continue
            node = self.nodes[target]
            self.statuses.append(node.add_pod(pod))
            lifetime = self.spec.pod_lifetimes.get(pod.uid)
            if lifetime is not None:
                scheduler.call_at(now + lifetime, scheduler.call_soon, self._delete, node, pod.uid)

    def _delete(self, node: Node, uid: str) -> None:
        if self._ended:
            return
        status = node.remove_pod(uid)
        self._deleted += 1
        if not self._deleted % _CYCLES_PER_COLLECTION:
            collect_cycles()
        if status is not None and not status.ready:
            self._settle()

    def _ready(self, _status: PodStatus) -> None:
        self._settle()

    def _settle(self) -> None:
        self._settled += 1
        if self._settled == self._total:
            self._end()

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._on_end()

    def finish(self) -> VariantResult:
        """Collect the results, once nothing more runs: the event core has returned (and is
        dropped with whatever it still held: a million pulls stranded in queues need no
        unwinding), or the nodes on the loop were stopped."""
        if self._deadline is not None:
            self._deadline.cancel()
        if self._creator is not None:
            self._creator.cancel()
        spec = self.spec
        tally = self.tally
        return VariantResult(
            name=spec.name,
            spec=spec,
            pods=self.statuses,
            events=self.log.events,
            simulated_ns=self.scheduler.now_ns,
            wall_seconds=0.0,
            bytes_pulled=0,
            counts=dict(self.log.counts),
            pulls=tally.started,
            failed_pulls=tally.failed,
            nodes=[node_report(node) for node in self.nodes.values()],
            pull_seconds=tally.durations,
        )
