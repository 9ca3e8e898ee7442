"""One simulated node: its image store, pull queue, back-off, image manager, pod workers and
image GC.

This is the composition root the daemon and the scenario runner share; everything a node does
to images happens through the objects wired here, from collaborators the caller hands in (the
registry backend, the event sink, the store and, when images are real, the runtime image GC
talks to). The node owns its background work: `start` begins image GC on the node's clock (a
sweep now, a run every 5 minutes), pod workers run as guarded tasks (a crash is logged at once),
and `stop` ends them all. Images in use, for GC, are those of the containers of the pods the
node holds: a pod deleted (`remove_pod`) no longer holds its images. Readers see the node
through `snapshot`, a frozen `NodeSnapshot`, never through its parts.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterable
from typing import Protocol

from kubesim_images.backoff import Backoff, BackoffEntry
from kubesim_images.errors import ImageFsStatsError
from kubesim_images.events import EventSink
from kubesim_images.image_gc import GCPolicy, ImageRuntime
from kubesim_images.kubeletconfig import KubeletConfig
from kubesim_images.manager import ImageManager, PullObserver
from kubesim_images.nodegc import GCTicker, NodeImageGC
from kubesim_images.pod import Pod
from kubesim_images.podworkers import CredentialLookup, PodStatus, PodWorkers, SyncSettings
from kubesim_images.puller import ImagePuller, PullEntry
from kubesim_images.registry.base import LayerSink, RegistryBackend
from kubesim_images.scheduler import LoopScheduler, Scheduler
from kubesim_images.snapshot import BackoffView, DiskView, GCView, ImageView, NodeSnapshot, PullView
from kubesim_images.store import ImageRecord, ImageStore, StoreListener


class NodeListener(StoreListener, Protocol):
    """Told of every change of the node's state from `start` on, e.g. to write it through to
    disk or to watchers. What the node was given before (preloaded images, restored state) is
    not told back."""

    def backoff_changed(self, key: str, entry: BackoffEntry | None) -> None: ...

    def pod_changed(self, status: PodStatus) -> None: ...


class Node:
    __slots__ = (
        "_in_use",
        "_listener",
        "_watch",
        "backoff",
        "gc",
        "kubelet",
        "manager",
        "name",
        "puller",
        "runtime",
        "scheduler",
        "store",
        "workers",
    )

    def __init__(
        self,
        name: str,
        backend: RegistryBackend,
        kubelet: KubeletConfig,
        events: EventSink,
        *,
        store: ImageStore,
        runtime: ImageRuntime | None = None,
        sync: SyncSettings | None = None,
        rng: random.Random | None = None,
        sink: LayerSink | None = None,
        credentials: CredentialLookup | None = None,
        observer: PullObserver | None = None,
        listener: NodeListener | None = None,
        on_ready: Callable[[PodStatus], None] | None = None,
        on_sync: Callable[[PodStatus], None] | None = None,
        scheduler: Scheduler | None = None,
        gc_ticker: GCTicker | None = None,
    ) -> None:
        self.name = name
        # What the node's rules run on: the daemon's loop, or a scenario's event core.
        self.scheduler: Scheduler = LoopScheduler() if scheduler is None else scheduler
        self._listener = listener
        self.kubelet = kubelet
        self.store = store  # the caller's, empty or not: its disk model and pinned images
        self.puller = ImagePuller(name, backend, self.store, kubelet, sink, self.scheduler)
        self.backoff = Backoff()
        self.manager = ImageManager(name, self.puller, self.backoff, events, observer)
        self.workers = PodWorkers(
            self.manager,
            events,
            settings=sync,
            rng=rng,
            credentials=credentials,
            on_ready=on_ready,
            on_change=None if listener is None else listener.pod_changed,
            on_sync=on_sync,
        )
        self._in_use: tuple[int, Collection[str]] = (-1, frozenset())
        # Image GC lists, measures and removes through the runtime: the store itself, or a real
        # content store that keeps the store in step (`runtime.ContentRuntime`).
        self.runtime: ImageRuntime = runtime if runtime is not None else self.store
        # `gc_ticker`: shared by the nodes of a scenario, whose GC periods end together.
        # On the store itself, GC is told of every change of its images (`_StoreWatch`).
        watched = self.runtime is store
        self.gc = NodeImageGC(
            name,
            self.runtime,
            gc_policy(kubelet),
            events,
            self.images_in_use,
            self.scheduler,
            gc_ticker,
            told_of_changes=watched,
        )
        self._watch = _StoreWatch(self.gc) if watched else None
        if self._watch is not None:
            store.listener = self._watch

    def preload(self, records: Iterable[ImageRecord], now: int = 0) -> None:
        for record in records:
            self.store.add(record, None, now)

    def add_pod(self, pod: Pod) -> PodStatus:
        return self.workers.add(pod)

    def resume_pod(self, status: PodStatus) -> None:
        """A pod known before (its status restored after a restart, or just created with a
        status of the caller's): its worker starts, unless the pod is already ready."""
        self.workers.start(status)

    def update_pod(self, status: PodStatus, pod: Pod) -> None:
        """The pod's images changed: containers whose image changed restart (`PodWorkers`)."""
        self.workers.update(status, pod)

    def restore_backoff(self, key: str, backoff: int, last_update: int) -> None:
        """A back-off entry saved before a restart (not told to the listener)."""
        self.backoff.restore(key, backoff, last_update)

    def restore_first_detected(self, image_id: str, first_detected: int) -> None:
        """When a runtime that keeps it (a real content store) first held an image: image
        GC's minimum age and order of eviction survive the restart."""
        self.gc.manager.restore(image_id, first_detected, None)
        self.gc.images_changed()

    def kill_pod(self, uid: str) -> PodStatus | None:
        """A deleted pod, as the kubelet kills it (`PodWorkers.kill_now`): its worker's context
        is cancelled (a pull under way fails), its running containers are stopped
        (`Killing`)."""
        return self.workers.kill_now(uid)

    def remove_pod(self, uid: str) -> PodStatus | None:
        """Delete a pod: its worker stops and its containers no longer hold their images."""
        return self.workers.discard(uid)

    def images_in_use(self) -> Collection[str]:
        """Image ids of the containers of the node's pods (started ones; exited init too):
        worked out again only when the pods' images may have changed, and the same object
        (never changed once handed out) while they are the same."""
        workers = self.workers
        version, known = self._in_use
        if version == workers.images_version:
            return known
        used = workers.images_in_use()
        if used == known:
            used = known  # the same object: image GC then knows nothing changed
        self._in_use = (workers.images_version, used)
        return used

    def snapshot(self, at: int | None = None, *, queue: bool = True) -> NodeSnapshot:
        """The node's read model, stamped with loop time `at` (None when the reader does not
        care, as a metrics scrape): frozen, built now, O(queue + back-off + images); what
        metrics, debug endpoints, node status and reports read. Without `queue`, the pulls
        waiting and in flight are left out (a report of the node's disk and images has no use
        for a million stranded pulls)."""
        puller = self.puller
        store = self.store
        records = self.gc.manager.records
        try:
            fs = self.runtime.image_fs_stats()
            # The simulated disk knows its usage exactly; a real one is what it does not have.
            used = store.usage if self.runtime is store else fs.capacity - fs.available
            disk = DiskView(
                fs.capacity, fs.available, used, store.bytes_used, store.bytes_downloaded
            )
        except ImageFsStatsError as exc:
            disk = DiskView(0, 0, 0, store.bytes_used, store.bytes_downloaded, error=str(exc))
        images = []
        for record in store.images():
            usage = records.get(record.id)
            images.append(
                ImageView(
                    record.id,
                    tuple(record.repo_tags),
                    tuple(record.repo_digests),
                    record.size,
                    record.pinned,
                    None if usage is None else usage.last_used,
                    None if usage is None else usage.first_detected,
                )
            )
        images.sort(key=lambda image: image.id)
        backoff = []
        for key, entry in sorted(self.backoff.entries().items()):
            uid, _, image = key.partition("_")
            backoff.append(BackoffView(uid, image, entry.backoff, entry.last_update))
        gc = self.gc
        return NodeSnapshot(
            node=self.name,
            at=at,
            pull_concurrency=self.kubelet.pull_concurrency,
            waiting=tuple(_pull_view(e, None) for e in puller.waiting.values()) if queue else (),
            in_flight=tuple(
                _pull_view(e, puller.progress(e.pull_id)) for e in puller.in_flight.values()
            )
            if queue
            else (),
            backoff=tuple(backoff),
            images=tuple(images),
            disk=disk,
            gc=GCView(
                policy=gc.policy,
                runs=gc.runs,
                images_collected=gc.images_collected,
                bytes_freed=gc.bytes_freed,
                re_pulls=store.re_pulls,
                # A copy first: a real store's GC may be counting in its worker thread.
                collected_total=tuple(sorted(gc.manager.collected_total.copy().items())),
                history=tuple(gc.history),
                disk=tuple(gc.disk),
            ),
        )

    def start(self) -> None:
        """From now on, tell the listener of every change; begin the background work (image
        GC: a sweep now, a run every 5 minutes)."""
        listener = self._listener
        if listener is not None:
            if self._watch is not None:
                self._watch.listener = listener
            else:
                self.store.listener = listener
            self.backoff.on_change = listener.backoff_changed
        self.gc.start()

    async def stop(self) -> None:
        await self.gc.stop()
        self.workers.halt()


class _StoreWatch:
    """The store's listener when image GC works on the store itself: GC is told of every
    change of its images, and the node's listener, from the node's start on, of all."""

    __slots__ = ("gc", "listener")

    def __init__(self, gc: NodeImageGC) -> None:
        self.gc = gc
        self.listener: StoreListener | None = None

    def image_changed(self, record: ImageRecord) -> None:
        self.gc.image_stored(record.id, pinned=record.pinned)
        if self.listener is not None:
            self.listener.image_changed(record)

    def image_removed(self, image_id: str) -> None:
        self.gc.images_changed()
        if self.listener is not None:
            self.listener.image_removed(image_id)


_POLICIES: dict[KubeletConfig, GCPolicy] = {}


def gc_policy(kubelet: KubeletConfig) -> GCPolicy:
    """Image GC's policy from the kubelet's configuration; the nodes of a pool share it."""
    policy = _POLICIES.get(kubelet)
    if policy is None:
        if len(_POLICIES) > 1024:
            _POLICIES.clear()
        policy = _POLICIES[kubelet] = _gc_policy(kubelet)
    return policy


def _gc_policy(kubelet: KubeletConfig) -> GCPolicy:
    return GCPolicy.from_seconds(
        kubelet.image_gc_high_threshold_percent,
        kubelet.image_gc_low_threshold_percent,
        kubelet.image_minimum_gc_age,
        kubelet.image_maximum_gc_age,
    )


def _pull_view(entry: PullEntry, progress: tuple[float, int] | None) -> PullView:
    done, total = (None, None) if progress is None else (int(progress[0]), progress[1])
    return PullView(
        entry.pull_id,
        entry.image,
        entry.ref.pull_ref,
        entry.pod,
        entry.enqueued_at,
        entry.started_at,
        done,
        total,
    )
