"""One simulated node: its image store, pull queue, back-off, image manager, pod workers and
image GC.

This is the composition root the daemon and the scenario runner share; everything a node does
to images happens through the objects wired here. The node owns its background work: `start`
begins image GC on the node's clock (a sweep now, a run every 5 minutes), `stop` ends it and
the pod workers. Images in use, for GC, are those of the containers of the pods the node holds:
a pod deleted (`remove_pod`) no longer holds its images.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from kubesim_images.backoff import Backoff
from kubesim_images.events import EventSink
from kubesim_images.image_gc import GCPolicy
from kubesim_images.kubeletconfig import KubeletConfig
from kubesim_images.manager import ImageManager, PullObserver
from kubesim_images.nodegc import NodeImageGC
from kubesim_images.pod import Pod
from kubesim_images.podworkers import CredentialLookup, PodStatus, PodWorkers, SyncSettings
from kubesim_images.puller import ImagePuller
from kubesim_images.registry.base import LayerSink, RegistryBackend
from kubesim_images.store import ImageRecord, ImageStore


class Node:
    def __init__(
        self,
        name: str,
        backend: RegistryBackend,
        kubelet: KubeletConfig,
        events: EventSink,
        *,
        sync: SyncSettings | None = None,
        rng: random.Random | None = None,
        store: ImageStore | None = None,
        sink: LayerSink | None = None,
        credentials: CredentialLookup | None = None,
        observer: PullObserver | None = None,
        on_ready: Callable[[PodStatus], None] | None = None,
        on_change: Callable[[PodStatus], None] | None = None,
    ) -> None:
        self.name = name
        self.kubelet = kubelet
        self.store = store if store is not None else ImageStore()
        self.puller = ImagePuller(name, backend, self.store, kubelet, sink)
        self.backoff = Backoff()
        self.manager = ImageManager(name, self.puller, self.backoff, events, observer)
        self.workers = PodWorkers(
            self.manager,
            events,
            settings=sync,
            rng=rng,
            credentials=credentials,
            on_ready=on_ready,
            on_change=on_change,
        )
        self.gc = NodeImageGC(name, self.store, gc_policy(kubelet), events, self.images_in_use)

    def preload(self, records: Iterable[ImageRecord], now: int = 0) -> None:
        for record in records:
            self.store.add(record, None, now)

    def add_pod(self, pod: Pod) -> PodStatus:
        return self.workers.add(pod)

    async def remove_pod(self, uid: str) -> PodStatus | None:
        """Delete a pod: its worker stops and its containers no longer hold their images."""
        return await self.workers.remove(uid)

    def images_in_use(self) -> set[str]:
        """Image ids of the containers of the node's pods (started ones; exited init too)."""
        return {
            cs.image_id
            for status in self.workers.pods.values()
            for cs in status.all_statuses()
            if cs.image_id
        }

    def start(self) -> None:
        """Begin the node's background work: image GC."""
        self.gc.start()

    async def stop(self) -> None:
        await self.gc.stop()
        await self.workers.stop()


def gc_policy(kubelet: KubeletConfig) -> GCPolicy:
    return GCPolicy.from_seconds(
        kubelet.image_gc_high_threshold_percent,
        kubelet.image_gc_low_threshold_percent,
        kubelet.image_minimum_gc_age,
        kubelet.image_maximum_gc_age,
    )
