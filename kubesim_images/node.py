"""One simulated node: its image store, pull queue, back-off, image manager and pod workers.

This is the composition root the daemon and the scenario runner share; everything a node does
to images happens through the objects wired here.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from kubesim_images.backoff import Backoff
from kubesim_images.events import EventSink
from kubesim_images.kubeletconfig import KubeletConfig
from kubesim_images.manager import ImageManager, PullObserver
from kubesim_images.pod import Pod
from kubesim_images.podworkers import CredentialLookup, PodStatus, PodWorkers, SyncSettings
from kubesim_images.puller import ImagePuller
from kubesim_images.registry.base import RegistryBackend
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
        credentials: CredentialLookup | None = None,
        observer: PullObserver | None = None,
        on_ready: Callable[[PodStatus], None] | None = None,
        on_change: Callable[[PodStatus], None] | None = None,
    ) -> None:
        self.name = name
        self.kubelet = kubelet
        self.store = store or ImageStore()
        self.puller = ImagePuller(name, backend, self.store, kubelet)
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

    def preload(self, records: Iterable[ImageRecord], now: int = 0) -> None:
        for record in records:
            self.store.add(record, None, now)

    def add_pod(self, pod: Pod) -> PodStatus:
        return self.workers.add(pod)

    async def stop(self) -> None:
        await self.workers.stop()
