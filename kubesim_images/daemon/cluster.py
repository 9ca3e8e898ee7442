"""The composition root: the daemon's nodes, their registries, and the storage of every kind.

Builds, from the config and the state store, each node's backend and sink (`backends.build`,
as scenarios do), the nodes of every pool (image manager, puller, pod workers, GC), the change
feed, and one `Storage` per kind of the resource table (`resources.py`): `ObjectStorage` for the
kinds the daemon only stores, and the kinds with a life of their own (pods and their status
manager in `pods.py`, the nodes in `nodestatus.py`, events, namespaces). `restore` loads
everything saved and then writes changes through, so a restart, even after `kill -9`, finds the
same pods, images and back-off and resumes the syncs under way.
The jobs themselves live in their modules; this one only wires them.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from typing import Any

from kubesim_images import backends
from kubesim_images.backoff import BackoffEntry
from kubesim_images.clock import WallClock, now_ns, to_ns
from kubesim_images.daemon.apps import ControllerObjects, WorkloadStorage
from kubesim_images.daemon.changefeed import ChangeFeed
from kubesim_images.daemon.config import DaemonConfig
from kubesim_images.daemon.credentials import PullCredentials
from kubesim_images.daemon.eventstore import EventStore
from kubesim_images.daemon.kube import ApiError
from kubesim_images.daemon.namespaces import Namespaces
from kubesim_images.daemon.nodestatus import NodeObject, NodeObjects, Registration
from kubesim_images.daemon.objects import ObjectTable
from kubesim_images.daemon.podcodec import image_from_json, image_json
from kubesim_images.daemon.podevents import PodEvents
from kubesim_images.daemon.pods import PodStore
from kubesim_images.daemon.resources import RESOURCES, Resource
from kubesim_images.daemon.storage import ObjectStorage, Storage
from kubesim_images.events import FanOut
from kubesim_images.keyring import Keyring
from kubesim_images.metrics import Metrics
from kubesim_images.node import Node
from kubesim_images.nodepool import NodePool
from kubesim_images.placement import Placer
from kubesim_images.podworkers import PodStatus
from kubesim_images.registry.simulated import preload
from kubesim_images.state import StateStore
from kubesim_images.store import ImageRecord
from kubesim_images.workloads.manager import WorkloadControllers

# The kinds the namespace controller deletes before the others: a Deployment's controller would
# re-create a purged ReplicaSet, and a ReplicaSet's a purged pod.
_PURGE_FIRST = {"Deployment": 0, "ReplicaSet": 1}


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
        # The kinds the daemon only stores, one table each (secrets and service accounts are
        # also read by pull credentials and pod admission).
        self.tables = {
            r.kind: ObjectTable(r.kind, r.plural, state, self.feed)
            for r in resources
            if r.strategy is not None
        }
        self.secrets = self.tables["Secret"]
        self.service_accounts = self.tables["ServiceAccount"]
        # Every node of every pool: its own queue, QPS bucket, back-off, store and, from
        # `backends.build`, its registry client, content store and downlink at its pool's
        # bandwidth (a simulated registry is one, shared, with a downlink per node). The first
        # node keeps the one-node layout (`content`); the others a store of their own.
        first = config.node_name
        self.registries = backends.build(
            config.registry,
            config.oci,
            seed=config.seed,
            node_bandwidth=config.node_bandwidth,
            content_root=lambda node: (
                state.directory / "content"
                if node == first
                else state.directory / "nodes" / node / "content"
            ),
            now=lambda: self.clock.epoch(now_ns(loop)),
        )
        rng = random.Random(config.seed)
        self.nodes: dict[str, Node] = {}
        objects: list[NodeObject] = []
        for pool in config.pools:
            credentials = PullCredentials(self.secrets, Keyring(pool.credentials))
            for name in pool.node_names():
                backend, sink = self.registries.node(name, pool.bandwidth, pool.platform)
                store = pool.image_store()
                node = Node(
                    name,
                    backend,
                    pool.kubelet,
                    FanOut(self.events, metrics),
                    sync=config.sync,
                    rng=rng,
                    credentials=credentials,
                    observer=metrics,
                    # self.pod_events is built below, from these nodes: looked up at call time.
                    on_sync=lambda status: self.pod_events.synced(status),  # noqa: PLW0108
                    store=store,
                    # Image GC works on the disk when a real content store keeps the images:
                    # against a configured capacity, or the free space of the state dir's disk.
                    runtime=self.registries.runtime(
                        name,
                        store,
                        capacity=pool.image_fs.capacity if pool.image_fs.capacity_set else None,
                        other_usage=pool.image_fs.other_usage,
                        pinned=[pool.sandbox_image],
                    ),
                    sink=sink,
                    # Told of changes once the node starts, after `restore`.
                    listener=_ListenerOf(self, name),
                )
                self.nodes[name] = node
                objects.append(self._node_object(node, pool, loop))
        self.node = next(iter(self.nodes.values()))  # the first: what /debug shows by default
        self.node_objects = NodeObjects(objects)
        metrics.bind_nodes(list(self.nodes.values()))
        placer = Placer([(o.name, o.registration.labels) for o in objects])
        for obj in objects:
            reg = obj.registration
            placer.update(
                obj.name, reg.labels, unschedulable=reg.unschedulable, taints=reg.filtering_taints()
            )
            # The scheduler's part: a node's new labels, cordon or taints, its pending pods
            # retried (self.pods is built below: looked up at call time).
            obj.on_update = lambda o: self.pods.node_updated(
                o.name,
                o.registration.labels,
                unschedulable=o.registration.unschedulable,
                taints=o.registration.filtering_taints(),
            )
        self.pods = PodStore(
            self.nodes,
            placer,
            state,
            self.feed,
            self.clock,
            self.service_accounts,
            self.events,
            always_pull_images=config.always_pull_images,
        )
        self.node_created = objects[0].created_epoch
        self.pod_events = PodEvents(self.feed, self.events, self.clock, self.secrets)
        stores: dict[str, Storage] = {
            "Pod": self.pods,
            "Event": self.events,
            "Node": self.node_objects,
        }
        # apps/v1: storage of their own, and the controllers that reconcile them.
        self.workloads = {
            r.kind: WorkloadStorage(
                r.kind,
                ObjectTable(r.kind, r.plural, state, self.feed),
                self.feed,
                self.clock,
                always_pull_images=config.always_pull_images,
            )
            for r in resources
            if r.group == "apps"
        }
        stores.update(self.workloads)
        for res in resources:
            if res.strategy is not None:
                stores[res.kind] = ObjectStorage(
                    self.tables[res.kind],
                    res.strategy,
                    self.feed,
                    self.clock,
                    api_version=res.api_version,
                )
        self.namespaces = Namespaces(
            state, self.feed, self.clock, stores["ServiceAccount"], self._purge_namespace
        )
        stores["Namespace"] = self.namespaces
        self.controllers: WorkloadControllers | None = None
        if {"Deployment", "ReplicaSet"} <= self.workloads.keys():
            self.controllers = WorkloadControllers(
                ControllerObjects(
                    self.pods,
                    self.workloads,
                    self.events,
                    self.clock,
                    self.namespaces.admit_create,
                ),
                self._subscribe,
                rng=random.Random(),  # pod name suffixes, drawn as the apiserver's generateName
                now=lambda: self.clock.to_datetime(self.clock.now_ns()),
            )
        missing = {r.kind for r in resources} - stores.keys()
        if missing:
            raise TypeError(f"resource table kinds without storage: {sorted(missing)}")
        self.stores = stores

    def _node_object(
        self, node: Node, pool: NodePool, loop: asyncio.AbstractEventLoop
    ) -> NodeObject:
        """The Node object of `node`: its registration (uid, creation time, what clients
        changed) kept across restarts (the first node's under the keys a one-node state
        directory used)."""
        suffix = "" if node is next(iter(self.nodes.values())) else f"/{node.name}"
        platform = pool.platform or (
            self.config.oci.platform if self.config.oci is not None else None
        )
        arch = platform.architecture if platform is not None else "amd64"
        saved = self.state.get_meta(f"nodeRegistration{suffix}")
        if saved:
            registration = Registration.from_json(saved, node.name, arch)
        else:
            uid = self.state.get_meta(f"nodeUID{suffix}") or str(uuid.uuid4())
            created = float(
                self.state.get_meta(f"nodeCreated{suffix}") or self.clock.epoch(now_ns(loop))
            )
            registration = Registration.of_kubelet(uid, created, node.name, arch, pool.labels)

        def save(registration: Registration) -> None:
            with self.state.transaction():
                self.state.put_meta(f"nodeRegistration{suffix}", registration.to_json())
                self.state.put_meta(f"nodeUID{suffix}", registration.uid)
                self.state.put_meta(f"nodeCreated{suffix}", str(registration.created_epoch))

        return NodeObject(
            node,
            self.clock,
            self.feed,
            registration,
            pool_labels=pool.labels,
            arch=arch,
            save=save,
        )

    def _subscribe(
        self, kind: str, watcher: Callable[[str, dict[str, Any]], None]
    ) -> Callable[[], None]:
        """The change feed as the controllers take it: (ADDED | MODIFIED | DELETED, object)."""
        return self.feed.subscribe(kind, lambda change: watcher(change.type, change.object))

    @property
    def resource_version(self) -> int:
        """The collection resourceVersion of a list: the last version handed out."""
        return self.feed.version

    def _namespaces_in_use(self) -> set[str]:
        return self.pods.namespaces() | {
            ns
            for table in (*self.tables.values(), *(w.table for w in self.workloads.values()))
            for ns, _ in table
            if ns
        }

    async def _purge_namespace(self, namespace: str) -> None:
        """The namespace controller's content deletion: every object of every namespaced kind,
        the workloads first (Deployments, then ReplicaSets) so that no controller re-creates
        what is purged after them, then the rest in table order (pods first), then, once the
        pods are gone, their events."""
        namespaced = [r for r in self.resources if r.namespaced and "delete" in r.verbs]
        order = sorted(namespaced, key=lambda r: _PURGE_FIRST.get(r.kind, len(_PURGE_FIRST)))
        for res in order:
            store = self.stores[res.kind]
            for doc in store.list(namespace):
                try:
                    await store.delete(namespace, doc["metadata"]["name"])
                except ApiError as exc:
                    if exc.code != 404:  # gone meanwhile is what was wanted
                        raise
        await self.pods.wait_gone(namespace)
        self.events.remove_namespace(namespace)

    # -- restore and shutdown ----------------------------------------------------------------
    def restore(self) -> None:
        """Load everything saved, then start writing changes through."""
        self.state.adopt_images(self.node.name)
        for node in self.nodes.values():
            self._restore_images(node)
        # Back-off entries are keyed by pod UID: each goes to the node its pod is bound to.
        bound = {
            doc["metadata"]["uid"]: (doc.get("spec") or {}).get("nodeName")
            for doc in self.state.objects("Pod")
        }
        for key, (backoff, last_update) in self.state.backoffs().items():
            owner = self.nodes.get(bound.get(key.partition("_")[0]) or "")
            if owner is None:  # its pod is gone, or bound to a node no longer configured
                self.state.delete_backoff(key)
                continue
            owner.restore_backoff(key, to_ns(backoff), self.clock.loop_time(last_update))
        for table in self.tables.values():
            table.restore()
        for workload in self.workloads.values():
            workload.table.restore()
        self.pods.restore()
        self.pod_events.restore(self.pods.list(None))
        self.namespaces.restore(self.node_created, self._namespaces_in_use())
        self.events.restore()
        for node in self.nodes.values():
            node.start()  # changes written through from now on; image GC begins
        if self.controllers is not None:
            # Only now that every pod is back: a controller started earlier would count none
            # and create a second set.
            self.controllers.start()

    def _meta_key(self, key: str, node: str) -> str:
        """A node's meta key: the first node's is the one a one-node state directory used."""
        return key if node == self.node.name else f"{key}/{node}"

    def _restore_images(self, node: Node) -> None:
        store = node.store
        real = self.registries.oci.get(node.name)
        # With a content store that keeps images, it is the truth about what is on the node.
        kept = real[1].content if real is not None and real[1].keep else None
        for doc in self.state.images(node.name):
            if kept is not None and kept.get(doc["id"]) is None:
                # Removed from the content store while we were down (`kubesim-images rmi`, or
                # image GC killed between the content store and this database).
                self.state.delete_image(node.name, doc["id"])
                continue
            store.add(image_from_json(doc), None, self.clock.loop_time(doc["lastUsed"]))
        if kept is not None:
            # The content store remembers when it first held each image: the minimum GC age
            # and the order of eviction survive a restart.
            for image in kept.list_images():
                first = self.clock.loop_time(image.first_detected)
                node.restore_first_detected(image.id, first)
        if self.state.get_meta(self._meta_key("initialized", node.name)):
            return
        pool = next(p for p in self.config.pools if node.name in p.node_names())
        node.preload(preload(pool.preloaded), self.clock.now_ns())
        obj = self.node_objects.by_name[node.name]
        with self.state.transaction():
            for record in store.images():
                self.state.put_image(node.name, record.id, image_json(record, self.clock))
            self.state.put_meta(self._meta_key("initialized", node.name), "1")
            self.state.put_meta(self._meta_key("nodeUID", node.name), obj.uid)
            self.state.put_meta(self._meta_key("nodeCreated", node.name), str(obj.created_epoch))

    async def stop(self) -> None:
        await self.namespaces.stop()
        if self.controllers is not None:
            await self.controllers.stop()
        self.pod_events.stop()
        for node in self.nodes.values():
            await node.stop()
        self.node_objects.stop()
        await self.pods.stop()
        await self.registries.close()

    # -- write-through hooks (each node's listener) -------------------------------------------
    def image_changed(self, node: str, record: ImageRecord) -> None:
        self.state.put_image(node, record.id, image_json(record, self.clock))
        self.pods.forget_renders(node)
        self.node_objects.by_name[node].changed()

    def image_removed(self, node: str, image_id: str) -> None:
        self.state.delete_image(node, image_id)
        self.pods.forget_renders(node)
        self.node_objects.by_name[node].changed()

    def backoff_changed(self, key: str, entry: BackoffEntry | None) -> None:
        if entry is None:
            self.state.delete_backoff(key)
        else:
            self.state.put_backoff(key, entry.backoff / 1e9, self.clock.epoch(entry.last_update))


class _ListenerOf:
    """One node's `NodeListener`: the cluster's hooks, told which node."""

    __slots__ = ("_cluster", "_node")

    def __init__(self, cluster: Cluster, node: str) -> None:
        self._cluster = cluster
        self._node = node

    def image_changed(self, record: ImageRecord) -> None:
        self._cluster.image_changed(self._node, record)

    def image_removed(self, image_id: str) -> None:
        self._cluster.image_removed(self._node, image_id)

    def backoff_changed(self, key: str, entry: BackoffEntry | None) -> None:
        self._cluster.backoff_changed(key, entry)

    def pod_changed(self, status: PodStatus) -> None:
        # The cluster's pods are built after its nodes: looked up at call time.
        self._cluster.pods.status_changed(status)
