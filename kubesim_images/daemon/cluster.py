"""The composition root: the daemon's node, its registry, and the storage of every kind.

Builds, from the config and the state store, the registry backend, the node (image manager,
puller, pod workers, GC), the change feed, and one `Storage` per kind of the resource table
(`resources.py`): `ObjectStorage` for the kinds the daemon only stores, and the kinds with a life
of their own (pods and their status manager in `pods.py`, the node in `nodestatus.py`, events,
namespaces). `restore` loads everything saved and then writes changes through, so a restart,
even after `kill -9`, finds the same pods, images and back-off and resumes the syncs under way.
The jobs themselves live in their modules; this one only wires them.
"""

from __future__ import annotations

import asyncio
import math
import random
import uuid

from kubesim_images import backends
from kubesim_images.backoff import BackoffEntry
from kubesim_images.clock import WallClock, now_ns, to_ns
from kubesim_images.daemon.changefeed import ChangeFeed
from kubesim_images.daemon.config import DaemonConfig
from kubesim_images.daemon.credentials import PullCredentials
from kubesim_images.daemon.eventstore import EventStore
from kubesim_images.daemon.namespaces import Namespaces
from kubesim_images.daemon.nodestatus import NodeObject
from kubesim_images.daemon.objects import ObjectTable
from kubesim_images.daemon.podcodec import image_from_json, image_json
from kubesim_images.daemon.pods import PodStore
from kubesim_images.daemon.resources import RESOURCES, Resource
from kubesim_images.daemon.storage import ObjectStorage, Storage
from kubesim_images.events import FanOut
from kubesim_images.keyring import Keyring
from kubesim_images.metrics import Metrics
from kubesim_images.node import Node
from kubesim_images.registry.base import RegistryBackend
from kubesim_images.registry.simulated import preload
from kubesim_images.state import StateStore
from kubesim_images.store import ImageRecord, ImageStore


class Cluster:
    def __init__(
        self,
        config: DaemonConfig,
        state: StateStore,
        metrics: Metrics,
        *,
        resources: tuple[Resource, ...] = RESOURCES,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.resources = resources
        self.config = config
        self.state = state
        self.metrics = metrics
        self.clock = WallClock(loop)
        self.started = now_ns(loop)
        self.feed = ChangeFeed(
            int(state.get_meta("resourceVersion", "1000")),
            save=lambda version: state.put_meta("resourceVersion", str(version)),
        )
        self.events = EventStore(
            state,
            self.clock,
            self.feed.next_version,
            lambda change, doc: self.feed.publish("Event", change, doc),
        )
        self.registries = backends.build(
            config.registry,
            config.oci,
            seed=config.seed,
            node_bandwidth=config.node_bandwidth,
            content_root=lambda _node: state.directory / "content",
            now=lambda: self.clock.epoch(now_ns(loop)),
        )
        # The daemon's real pulls run at the network's speed: downlinks are a scenario's model.
        bandwidth = config.node_bandwidth if config.oci is None else math.inf
        self.registry: RegistryBackend
        self.registry, sink = self.registries.node(config.node_name, bandwidth)
        # The kinds the daemon only stores, one table each (secrets and service accounts are
        # also read by pull credentials and pod admission).
        self.tables = {
            r.kind: ObjectTable(r.kind, r.plural, state, self.feed)
            for r in resources
            if r.strategy is not None
        }
        self.secrets = self.tables["Secret"]
        self.service_accounts = self.tables["ServiceAccount"]
        self.credentials = PullCredentials(self.secrets, Keyring(config.node_credentials))
        self.node = Node(
            config.node_name,
            self.registry,
            config.kubelet,
            FanOut(self.events, metrics),
            sync=config.sync,
            rng=random.Random(config.seed),
            credentials=self.credentials,
            observer=metrics,
            # self.pods is built below, from this node: looked up at call time.
            on_change=lambda status: self.pods.status_changed(status),  # noqa: PLW0108
            store=ImageStore(
                capacity=config.image_fs.capacity,
                other_usage=config.image_fs.other_usage,
                pinned=[config.sandbox_image],
            ),
            sink=sink,
        )
        metrics.bind_node(self.node)
        node_uid = state.get_meta("nodeUID") or str(uuid.uuid4())
        node_created = float(state.get_meta("nodeCreated") or self.clock.epoch(now_ns(loop)))
        self.node_object = NodeObject(self.node, self.clock, self.feed, node_uid, node_created)
        self.pods = PodStore(
            self.node,
            state,
            self.feed,
            self.clock,
            self.service_accounts,
            always_pull_images=config.always_pull_images,
        )
        self.namespaces = Namespaces(
            state, self.feed, self.clock, lambda: node_created, self._namespaces_in_use
        )
        stores: dict[str, Storage] = {
            "Pod": self.pods,
            "Event": self.events,
            "Node": self.node_object,
            "Namespace": self.namespaces,
        }
        for res in resources:
            if res.strategy is not None:
                stores[res.kind] = ObjectStorage(
                    self.tables[res.kind],
                    res.strategy,
                    self.feed,
                    self.clock,
                    api_version=res.api_version,
                )
        missing = {r.kind for r in resources} - stores.keys()
        if missing:
            raise TypeError(f"resource table kinds without storage: {sorted(missing)}")
        self.stores = stores

    @property
    def resource_version(self) -> int:
        """The collection resourceVersion of a list: the last version handed out."""
        return self.feed.version

    def _namespaces_in_use(self) -> set[str]:
        return (
            self.pods.namespaces()
            | {ns for ns, _ in self.secrets}
            | {ns for ns, _ in self.service_accounts}
        )

    # -- restore and shutdown ----------------------------------------------------------------
    def restore(self) -> None:
        """Load everything saved, then start writing changes through."""
        store = self.node.store
        first_start = not self.state.get_meta("initialized")
        # With a content store that keeps images, it is the truth about what is on the node.
        kept = next((sink.content for _, sink in self.registries.oci.values() if sink.keep), None)
        self.state.adopt_images(self.node.name)
        for doc in self.state.images(self.node.name):
            if kept is not None and kept.get(doc["id"]) is None:
                # Removed from the content store while we were down (`kubesim-images rmi`).
                self.state.delete_image(self.node.name, doc["id"])
                continue
            store.add(image_from_json(doc), None, self.clock.loop_time(doc["lastUsed"]))
        if first_start:
            self.node.preload(preload(self.config.preloaded), self.clock.now_ns())
            for record in store.images():
                self.state.put_image(self.node.name, record.id, image_json(record, self.clock))
            self.state.put_meta("initialized", "1")
            self.state.put_meta("nodeUID", self.node_object.uid)
            self.state.put_meta("nodeCreated", str(self.node_object.created_epoch))
        for key, (backoff, last_update) in self.state.backoffs().items():
            self.node.backoff.restore(key, to_ns(backoff), self.clock.loop_time(last_update))
        for table in self.tables.values():
            table.restore()
        if ("default", "default") not in self.service_accounts:
            self.stores["ServiceAccount"].create("default", {"metadata": {"name": "default"}})
        self.pods.restore()
        self.events.restore()
        store.listener = self
        self.node.backoff.on_change = self._backoff_changed
        self.node.start()  # image GC: a sweep now, a run every 5 minutes

    async def stop(self) -> None:
        await self.node.stop()
        self.node_object.stop()
        self.pods.stop()
        await self.registries.close()

    # -- write-through hooks (the image store's listener, the back-off's) ------------------
    def image_changed(self, record: ImageRecord) -> None:
        self.state.put_image(self.node.name, record.id, image_json(record, self.clock))
        self.pods.forget_renders()
        self.node_object.changed()

    def image_removed(self, image_id: str) -> None:
        self.state.delete_image(self.node.name, image_id)
        self.pods.forget_renders()
        self.node_object.changed()

    def _backoff_changed(self, key: str, entry: BackoffEntry | None) -> None:
        if entry is None:
            self.state.delete_backoff(key)
        else:
            self.state.put_backoff(key, entry.backoff / 1e9, self.clock.epoch(entry.last_update))
