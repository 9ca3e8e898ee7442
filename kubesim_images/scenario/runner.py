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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubesim_images import backends
from kubesim_images.clock import (
    WallClock,
    call_at_ns,
    collect_cycles,
    now_ns,
    run_virtual,
    sleep_ns,
)
from kubesim_images.credentials import KeyringProvider, ProviderChain
from kubesim_images.events import Event, EventLog, scheduler_event
from kubesim_images.keyring import Keyring
from kubesim_images.manager import PullObserver
from kubesim_images.node import Node
from kubesim_images.placement import Placer, Unschedulable
from kubesim_images.pod import Pod
from kubesim_images.podworkers import CredentialLookup, PodStatus
from kubesim_images.reasons import Reason
from kubesim_images.registry.simulated import preload
from kubesim_images.scenario.model import Scenario, VariantSpec
from kubesim_images.tasks import create_guarded_task


@dataclass(frozen=True, slots=True)
class ImageReport:
    name: str  # the first repo tag (else repo digest, else id)
    id: str
    size: int
    last_used: int | None  # ns; None: never seen in use by image GC's sweeps
    first_detected: int | None  # ns; None: not yet swept


@dataclass(frozen=True, slots=True)
class NodeReport:
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
    snapshot = node.snapshot()
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
    """In virtual time, or on the wall clock (`--real-time`, which real registries need)."""
    if spec.oci is not None and not real_time:
        raise ValueError(f"variant {spec.name}: registry type oci pulls for real: use --real-time")
    started = time.perf_counter()  # wall time of the run, reported and never used in logic
    if real_time:
        # Real registries need aiohttp and the content store; a simulated run imports neither.
        from kubesim_images.scenario.realtime import run_real_time  # noqa: PLC0415

        result = run_real_time(_simulate(spec, workdir))
    else:
        result = run_virtual(_simulate(spec, workdir))
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


async def _simulate(spec: VariantSpec, workdir: Path | None) -> VariantResult:
    with contextlib.ExitStack() as stack:
        if spec.oci is not None and workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kubesim-")))
        root = workdir if workdir is not None else Path()
        loop = asyncio.get_running_loop()
        registries = backends.build(
            spec.registry,
            spec.oci,
            seed=spec.seed,
            node_bandwidth=spec.node_bandwidth,
            content_root=lambda node: root / node,
            now=lambda: WallClock(loop).epoch(now_ns(loop)),  # real pulls' records only
        )
        try:
            result = await _run(spec, registries)
        finally:
            await registries.close()
        result.bytes_pulled = registries.bytes_fetched
        if spec.oci is not None:
            result.registry_stats = registries.stats()
        return result


async def _run(spec: VariantSpec, registries: backends.Registries) -> VariantResult:
    loop = asyncio.get_running_loop()
    log = EventLog()
    tally = PullTally()
    rng = random.Random(spec.seed)
    total = len(spec.pods)
    done = asyncio.Event()
    settled = 0  # pods that got their images, or were deleted before

    def settle() -> None:
        nonlocal settled
        settled += 1
        if settled == total:
            done.set()

    def on_ready(_status: PodStatus) -> None:
        settle()

    credentials = _credential_lookup(spec)
    nodes: dict[str, Node] = {}
    for pool in spec.pools:
        preloaded = preload(pool.preloaded)
        for name in pool.node_names():
            backend, sink = registries.node(name, pool.bandwidth, spec.platform(pool))
            store = pool.image_store()
            node = Node(
                name,
                backend,
                pool.kubelet,
                log,
                sync=spec.sync,
                rng=rng,
                on_ready=on_ready,
                credentials=credentials,
                observer=tally,
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
            )
            node.preload(preloaded, 0)
            node.start()
            nodes[name] = node
    # Pods already placed count, deleted or not: with no node selectors this is exactly the
    # round-robin over nodes in workload order that scenario files promise (SPEC section 8).
    placer = Placer([(name, pool.labels) for pool in spec.pools for name in pool.node_names()])

    statuses: list[PodStatus] = []
    deletions: set[asyncio.Task[None]] = set()

    deleted = 0

    async def delete(node: Node, uid: str) -> None:
        nonlocal deleted
        status = await node.remove_pod(uid)
        if status is not None and not status.ready:
            settle()
        deleted += 1
        if not deleted % _CYCLES_PER_COLLECTION:
            collect_cycles()  # a cancelled worker leaves its CancelledError's cycle

    def schedule_delete(node: Node, uid: str) -> None:
        task = create_guarded_task(delete(node, uid), name=f"scenario-delete:{uid}")
        deletions.add(task)
        task.add_done_callback(deletions.discard)

    async def create_pods() -> None:
        for at, pod in spec.pods:
            if at > now_ns(loop):
                await sleep_ns(at - now_ns(loop))
            target = placer.place(pod.node_name or None, pod.node_selector, pod.node_affinity)
            if isinstance(target, Unschedulable):
                # Pending for good: no node takes it, so it never settles the run either.
                statuses.append(PodStatus(pod, "", now_ns(loop)))
                if target.message is not None:
                    log.emit(scheduler_event(now_ns(loop), pod, target.message))
                continue
            node = nodes[target]
            statuses.append(node.add_pod(pod))
            lifetime = spec.pod_lifetimes.get(pod.uid)
            if lifetime is not None:
                call_at_ns(loop, now_ns(loop) + lifetime, schedule_delete, node, pod.uid)

    creator = loop.create_task(create_pods(), name="scenario-workload")
    # The cap is one more timer: whatever else is due at that very nanosecond and was
    # scheduled before it still runs (the tie rule).
    deadline = call_at_ns(loop, spec.duration, done.set)
    try:
        if total:
            await done.wait()
        else:
            await creator
    finally:
        deadline.cancel()
        creator.cancel()
        await asyncio.gather(creator, return_exceptions=True)
        for task in list(deletions):
            task.cancel()
        await asyncio.gather(*deletions, return_exceptions=True)
        for node in nodes.values():
            await node.stop()
    return VariantResult(
        name=spec.name,
        spec=spec,
        pods=statuses,
        events=log.events,
        simulated_ns=now_ns(loop),
        wall_seconds=0.0,
        bytes_pulled=0,
        counts=dict(log.counts),
        pulls=tally.started,
        failed_pulls=tally.failed,
        nodes=[node_report(node) for node in nodes.values()],
        pull_seconds=tally.durations,
    )
