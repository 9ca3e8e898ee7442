"""The daemon's objects and the node that runs them: pods, secrets, service accounts, events.

Owns the API semantics the image manager depends on: pods are validated and defaulted once at
creation (pull policy, AlwaysPullImages, the service account's imagePullSecrets), pull secrets
are resolved into a keyring per pod (pod secrets first, then the node's docker config), and
every change is written through to the state store so a restart, even after `kill -9`, finds
the same pods, images and back-off and resumes the syncs that were under way.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import random
import secrets as pysecrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubesim_images.backoff import BackoffEntry
from kubesim_images.clock import WallClock, now_ns, to_ns
from kubesim_images.contentstore import ContentStore
from kubesim_images.daemon.changefeed import ADDED, DELETED, MODIFIED, ChangeFeed
from kubesim_images.daemon.config import DaemonConfig
from kubesim_images.daemon.eventstore import EventStore
from kubesim_images.daemon.kube import ApiError, already_exists, bad_request, invalid, not_found
from kubesim_images.daemon.nodestatus import render_node
from kubesim_images.daemon.objects import (
    ObjectTable,
    body_meta,
    check_kind,
    check_patched_meta,
    check_string_maps,
    merge_patch,
    redact_secret,
    require_name,
    secret_credentials,
    secret_data,
    validate_pull_secret_refs,
    validate_secret,
)
from kubesim_images.daemon.podupdate import (
    SpecMerge,
    check_spec_update,
    default_spec,
    patch_spec,
)
from kubesim_images.daemon.shapes import check_pod, keep_shape
from kubesim_images.daemon.validation import (
    container_count_causes,
    metadata_causes,
    name_causes,
    namespace_causes,
    require_valid,
)
from kubesim_images.events import FanOut
from kubesim_images.keyring import Credential, Keyring, UnionKeyring
from kubesim_images.metrics import Metrics
from kubesim_images.node import Node
from kubesim_images.oci.backend import OciRegistry
from kubesim_images.pod import FieldError, Pod, PodInvalidError, pod_from_manifest
from kubesim_images.podworkers import (
    ContainerStatus,
    PodStatus,
    State,
    containers_ready_condition,
    initialized_condition,
)
from kubesim_images.reference import ImageReference
from kubesim_images.registry.base import RegistryBackend
from kubesim_images.registry.simulated import SimulatedRegistry, preload
from kubesim_images.state import StateStore
from kubesim_images.store import ImageRecord, ImageStore, Layer


@dataclass(slots=True)
class PodRecord:
    manifest: dict[str, Any]
    status: PodStatus
    # The pod as the API shows it, rendered once per change: every GET, LIST and watch shares
    # it, so nothing may modify it. Cleared by every change of the manifest or the status.
    rendered: dict[str, Any] | None = None


class Cluster:
    def __init__(self, config: DaemonConfig, state: StateStore, metrics: Metrics) -> None:
        loop = asyncio.get_running_loop()
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
        spec = config.registry
        self.oci: OciRegistry | None = None
        self.registry: RegistryBackend
        if config.oci is not None:
            # discard: verified, counted and dropped, so nothing is worth an fsync
            content = ContentStore(state.directory / "content", durable=config.oci.store == "keep")
            self.oci = OciRegistry(config.oci, content, now=lambda: self.clock.epoch(now_ns(loop)))
            self.registry = self.oci
        else:
            self.registry = SimulatedRegistry(
                spec.catalogue,
                latency=spec.latency,
                bandwidth=spec.bandwidth,
                node_bandwidth=config.node_bandwidth,
                faults=spec.faults,
                rate_limit=spec.rate_limit,
                seed=config.seed,
            )
        self.node_keyring = Keyring(config.node_credentials)
        self.node = Node(
            config.node_name,
            self.registry,
            config.kubelet,
            FanOut(self.events, metrics),
            sync=config.sync,
            rng=random.Random(config.seed),
            credentials=self._credentials,
            observer=metrics,
            on_change=self._pod_changed,
            store=ImageStore(
                capacity=config.image_fs.capacity,
                other_usage=config.image_fs.other_usage,
                pinned=[config.sandbox_image],
            ),
        )
        metrics.bind_node(self.node)
        self.node_uid = state.get_meta("nodeUID") or str(uuid.uuid4())
        self.node_created = float(state.get_meta("nodeCreated") or self.clock.epoch(now_ns(loop)))
        self.pods: dict[str, PodRecord] = {}
        self._pod_keys: dict[tuple[str, str], str] = {}
        self.secrets = ObjectTable("Secret", "secrets", state, self.feed)
        self.service_accounts = ObjectTable("ServiceAccount", "serviceaccounts", state, self.feed)
        # The node's resourceVersion: that of its last status change (its images).
        self._node_version = self.feed.version
        self._node_flush: asyncio.Handle | None = None
        self._dirty: dict[str, PodStatus] = {}
        self._flush: asyncio.Handle | None = None
        # (namespace, name) -> (resourceVersion, decoded docker config entries)
        self._decoded_secrets: dict[tuple[str, str], tuple[str, list[tuple[str, Credential]]]] = {}
        self.extra_namespaces: list[str] = json.loads(state.get_meta("namespaces", "[]"))

    # -- bookkeeping -------------------------------------------------------------------------
    def next_version(self) -> int:
        return self.feed.next_version()

    @property
    def resource_version(self) -> int:
        return self.feed.version

    def now_stamp(self) -> str:
        return self.clock.rfc3339(self.clock.now_ns())

    def add_namespace(self, name: str) -> None:
        names = [*self.extra_namespaces, name]
        with self.state.transaction():
            self.state.put_meta("namespaces", json.dumps(names))
        self.extra_namespaces = names
        doc = self.namespace_doc(name)
        doc["metadata"]["resourceVersion"] = str(self.next_version())
        self.feed.publish("Namespace", ADDED, doc)

    def namespaces(self) -> list[dict[str, Any]]:
        """Every namespace: the built-in ones, those created, and those objects live in."""
        names = {"default", "kube-system", "kube-public", "kube-node-lease"}
        names |= {r.status.pod.namespace for r in self.pods.values()}
        names |= {ns for ns, _ in self.secrets} | {ns for ns, _ in self.service_accounts}
        names |= set(self.extra_namespaces)
        return [self.namespace_doc(n) for n in sorted(names)]

    def namespace_doc(self, name: str) -> dict[str, Any]:
        return {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "creationTimestamp": self.clock.rfc3339(self.clock.loop_time(self.node_created)),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    # -- restore and shutdown ----------------------------------------------------------------
    def restore(self) -> None:
        """Load everything saved, then start writing changes through."""
        store = self.node.store
        first_start = not self.state.get_meta("initialized")
        # With a content store that keeps images, it is the truth about what is on the node.
        kept = (
            self.oci.content if self.oci is not None and self.oci.config.store == "keep" else None
        )
        for doc in self.state.images():
            if kept is not None and kept.get(doc["id"]) is None:
                # Removed from the content store while we were down (`kubesim-images rmi`).
                self.state.delete_image(doc["id"])
                continue
            store.add(_record_from_json(doc), None, self.clock.loop_time(doc["lastUsed"]))
        if first_start:
            self.node.preload(preload(self.config.preloaded), self.clock.now_ns())
            for record in store.images():
                self.state.put_image(record.id, self._record_json(record))
            self.state.put_meta("initialized", "1")
            self.state.put_meta("nodeUID", self.node_uid)
            self.state.put_meta("nodeCreated", str(self.node_created))
        for key, (backoff, last_update) in self.state.backoffs().items():
            self.node.backoff.restore(key, to_ns(backoff), self.clock.loop_time(last_update))
        self.secrets.restore()
        self.service_accounts.restore()
        if ("default", "default") not in self.service_accounts:
            self.service_accounts.put(self._new_meta_doc("ServiceAccount", "default", "default"))
        statuses = self.state.pod_statuses()
        for doc in self.state.objects("Pod"):
            pod = self._pod_from_stored(doc)
            status = self._status_from_json(pod, statuses.get(pod.uid))
            self.pods[pod.uid] = PodRecord(doc, status)
            self._pod_keys[(pod.namespace, pod.name)] = pod.uid
            self.node.workers.start(status)
        for uid in statuses.keys() - self.pods.keys():  # left by a delete before UID keying
            self.state.delete_pod_status(uid)
        self.events.restore()
        store.listener = self
        self.node.backoff.on_change = self._backoff_changed
        self.node.start()  # image GC: a sweep now, a run every 5 minutes

    async def stop(self) -> None:
        await self.node.stop()
        if self._node_flush is not None:
            self._node_flush.cancel()
            self._node_flush = None
        if self._flush is not None:
            self._flush.cancel()
            self._flush_changes()
        if self.oci is not None:
            await self.oci.close()
            self.oci.content.close()

    # -- write-through hooks -----------------------------------------------------------------
    def image_changed(self, record: ImageRecord) -> None:
        self.state.put_image(record.id, self._record_json(record))
        self._forget_renders()
        self._node_changed()

    def image_removed(self, image_id: str) -> None:
        self.state.delete_image(image_id)
        self._forget_renders()
        self._node_changed()

    def _node_changed(self) -> None:
        """The node's status.images changed: one new version per loop turn, not per image
        (a pull commits its image and the GC removes others in the same turn)."""
        if self._node_flush is None:
            self._node_flush = asyncio.get_running_loop().call_soon(self._flush_node)

    def _flush_node(self) -> None:
        self._node_flush = None
        self._node_version = self.next_version()
        # Rendered even when nobody watches: a watch resuming from an older version replays it.
        self.feed.publish("Node", MODIFIED, self.render_node())

    def _forget_renders(self) -> None:
        """A pod's imageID shows the image's digest: a changed store re-renders every pod."""
        for record in self.pods.values():
            record.rendered = None

    def _record_json(self, record: ImageRecord) -> dict[str, Any]:
        return {
            "id": record.id,
            "layers": [[layer.digest, layer.size] for layer in record.layers],
            "repoTags": record.repo_tags,
            "repoDigests": record.repo_digests,
            "lastUsed": self.clock.epoch(record.last_used),
        }

    def _backoff_changed(self, key: str, entry: BackoffEntry | None) -> None:
        if entry is None:
            self.state.delete_backoff(key)
        else:
            self.state.put_backoff(key, entry.backoff / 1e9, self.clock.epoch(entry.last_update))

    def _pod_changed(self, status: PodStatus) -> None:
        """Note the change; saving and rendering happen once per loop turn, not per container.

        A sync reports each container as it becomes ready; rendering the whole pod on each
        report made a pod of N present images cost N renders of N containers.
        """
        record = self.pods.get(status.pod.uid)
        if record is not None:
            record.rendered = None  # what a GET returns from now on is the new status
        self._dirty[status.pod.uid] = status
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_soon(self._flush_changes)

    def _flush_changes(self) -> None:
        self._flush = None
        dirty, self._dirty = self._dirty, {}
        for uid, status in dirty.items():
            record = self.pods.get(uid)
            if record is None or record.status is not status:
                continue  # deleted while its sync was finishing
            # A status change is a write like any other: the pod's next resourceVersion.
            meta = {**record.manifest["metadata"], "resourceVersion": str(self.next_version())}
            record.manifest = {**record.manifest, "metadata": meta}
            with self.state.transaction():
                self.state.put_object("Pod", meta["namespace"], meta["name"], record.manifest)
                self.state.put_pod_status(uid, self._status_json(status))
            record.rendered = None
            self.feed.publish("Pod", MODIFIED, self.render_pod(record))

    def _status_json(self, status: PodStatus) -> dict[str, Any]:
        def container(cs: ContainerStatus) -> dict[str, Any]:
            return {
                "name": cs.container.name,
                "state": cs.state.value,
                "reason": cs.reason,
                "message": cs.message,
                "imageID": cs.image_id,
                "pullAttempts": cs.pull_attempts,
                "startedAt": None if cs.started_at is None else self.clock.epoch(cs.started_at),
                "restarts": cs.restarts,
            }

        return {
            "createdAt": self.clock.epoch(status.created_at),
            "imagesReadyAt": None
            if status.images_ready_at is None
            else self.clock.epoch(status.images_ready_at),
            "containers": [container(cs) for cs in status.all_statuses()],
        }

    def _status_from_json(self, pod: Pod, doc: Mapping[str, Any] | None) -> PodStatus:
        created = self.clock.loop_time(doc["createdAt"]) if doc else self.clock.now_ns()
        reason = "PodInitializing" if pod.init_containers else "ContainerCreating"
        saved = {c["name"]: c for c in (doc or {}).get("containers", [])}

        def container(c: Any) -> ContainerStatus:
            cs = ContainerStatus(c, reason=reason)
            old = saved.get(c.name)
            if old is not None:
                cs.state = State(old["state"])
                cs.reason, cs.message = old["reason"], old["message"]
                cs.image_id, cs.pull_attempts = old["imageID"], old["pullAttempts"]
                if old["startedAt"] is not None:
                    cs.started_at = self.clock.loop_time(old["startedAt"])
                cs.restarts = old.get("restarts", 0)
            return cs

        ready = (doc or {}).get("imagesReadyAt")
        return PodStatus(
            pod=pod,
            node=self.node.name,
            created_at=created,
            init_statuses=[container(c) for c in pod.init_containers],
            statuses=[container(c) for c in pod.containers],
            images_ready_at=None if ready is None else self.clock.loop_time(ready),
        )

    # -- credentials -------------------------------------------------------------------------
    def _credentials(self, pod: Pod, ref: ImageReference) -> Sequence[Credential]:
        """Pod pull secrets first, then the node's docker config (UnionDockerKeyring)."""
        pod_keyring = Keyring(
            entry
            for name in pod.image_pull_secrets
            if (secret := self.secrets.get((pod.namespace, name))) is not None
            for entry in self._secret_entries(secret)
        )
        return UnionKeyring(pod_keyring, self.node_keyring).lookup(ref)

    def _secret_entries(self, secret: Mapping[str, Any]) -> list[tuple[str, Credential]]:
        """A secret's docker config, decoded once per version of the secret, not per pull."""
        meta = secret["metadata"]
        key, version = (meta["namespace"], meta["name"]), meta["resourceVersion"]
        cached = self._decoded_secrets.get(key)
        if cached is None or cached[0] != version:
            cached = self._decoded_secrets[key] = (version, secret_credentials(secret))
        return cached[1]

    # -- pods --------------------------------------------------------------------------------
    def _new_meta_doc(
        self, kind: str, namespace: str, name: str, *, dry_run: bool = False
    ) -> dict[str, Any]:
        meta = {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())}
        if not dry_run:  # a dry run consumes no resourceVersion; the API server shows none
            meta["resourceVersion"] = str(self.next_version())
        meta["creationTimestamp"] = self.now_stamp()
        return {"kind": kind, "apiVersion": "v1", "metadata": meta}

    def _patched_version(self, doc: dict[str, Any], *, dry_run: bool) -> None:
        """A patched object's resourceVersion: the next one, or for a dry run the current."""
        if not dry_run:
            doc["metadata"]["resourceVersion"] = str(self.next_version())

    def _pod_from_stored(self, doc: Mapping[str, Any]) -> Pod:
        meta = doc["metadata"]
        return pod_from_manifest(doc, namespace=meta["namespace"], uid=meta["uid"])

    def create_pod(
        self, namespace: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        body = check_kind(body, "Pod")
        meta = dict(body_meta(body, namespace))
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = f"{meta['generateName']}{pysecrets.token_hex(3)[:5]}"
            meta["name"] = name
        spec = body.get("spec")
        check_pod(body)
        require_valid(
            "Pod",
            str(name or ""),
            namespace_causes(namespace) + metadata_causes(meta) + container_count_causes(spec),
        )
        sa_name = "default"
        if isinstance(spec, Mapping):
            sa_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
            if not isinstance(sa_name, str):
                raise bad_request("spec.serviceAccountName must be a string")
        account = self.service_accounts.get((namespace, sa_name))
        if account is None and sa_name != "default":
            raise ApiError(
                403,
                "Forbidden",
                f'pods "{name}" is forbidden: error looking up service account '
                f'{namespace}/{sa_name}: serviceaccount "{sa_name}" not found',
                details={"name": name, "kind": "pods"},
            )
        extra: list[str] = []
        has_own = isinstance(spec, Mapping) and spec.get("imagePullSecrets")
        if account is not None and not has_own:
            # ServiceAccount admission: the account's pull secrets when the pod names none.
            extra = [
                ref["name"]
                for ref in account.get("imagePullSecrets") or []
                if isinstance(ref, Mapping) and ref.get("name")
            ]
        manifest = {**body, "metadata": meta}
        try:
            pod = pod_from_manifest(
                manifest,
                namespace=namespace,
                always_pull_images=self.config.always_pull_images,
                uid=str(uuid.uuid4()),
                extra_pull_secrets=extra,
            )
        except PodInvalidError as exc:
            raise invalid("Pod", exc.name, exc.causes) from None
        if (namespace, pod.name) in self._pod_keys:
            raise already_exists("pods", pod.name)
        stored = self._stored_pod(pod, manifest, sa_name, dry_run=dry_run)
        if dry_run:  # what the API server would store: no node has reported on it yet
            return {**stored, "status": {"phase": "Pending", "qosClass": "BestEffort"}}
        status = self._status_from_json(pod, None)
        with self.state.transaction():  # saved first: a refused write leaves memory untouched
            self.state.put_object("Pod", namespace, pod.name, stored)
            self.state.put_pod_status(pod.uid, self._status_json(status))
        record = PodRecord(stored, status)
        self.pods[pod.uid] = record
        self._pod_keys[(namespace, pod.name)] = pod.uid
        self.node.workers.start(status)
        rendered = self.render_pod(record)
        self.feed.publish("Pod", ADDED, rendered)
        return rendered

    def _stored_pod(
        self, pod: Pod, manifest: Mapping[str, Any], sa_name: str, *, dry_run: bool = False
    ) -> dict[str, Any]:
        """The object as the API server stores it after defaulting and admission."""
        spec = copy.deepcopy(dict(manifest.get("spec") or {}))
        default_spec(spec, pod)
        if pod.image_pull_secrets:
            spec["imagePullSecrets"] = [{"name": n} for n in pod.image_pull_secrets]
        spec["serviceAccountName"] = sa_name
        spec["serviceAccount"] = sa_name
        spec["nodeName"] = self.node.name
        meta = dict(manifest.get("metadata") or {})
        meta.update(name=pod.name, namespace=pod.namespace, uid=pod.uid)
        if not dry_run:
            meta["resourceVersion"] = str(self.next_version())
        meta["creationTimestamp"] = self.now_stamp()
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}

    def _record(self, namespace: str, name: str) -> PodRecord:
        uid = self._pod_keys.get((namespace, name))
        if uid is None:
            raise not_found("pods", name)
        return self.pods[uid]

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self.render_pod(self._record(namespace, name))

    def list_pods(self, namespace: str | None) -> list[dict[str, Any]]:
        records = sorted(
            self.pods.values(), key=lambda r: (r.status.pod.namespace, r.status.pod.name)
        )
        return [
            self.render_pod(r)
            for r in records
            if namespace is None or r.status.pod.namespace == namespace
        ]

    async def delete_pod(
        self, namespace: str, name: str, *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Delete this pod by UID, saved and forgotten before any await: a pod created under
        the same name while its worker stops is another object and is left alone.

        A dry run answers what the delete would, and leaves the pod and its worker alone."""
        record = self._record(namespace, name)
        if dry_run:
            return self._deleted_view(record)
        uid = record.status.pod.uid
        with self.state.transaction():
            self.state.delete_object("Pod", uid)
            self.state.delete_pod_status(uid)
        del self._pod_keys[(namespace, name)]
        del self.pods[uid]
        self._dirty.pop(uid, None)
        rendered = self._deleted_view(record)
        # The deletion is a change of its own, at a version of its own.
        self.feed.publish(
            "Pod",
            DELETED,
            {
                **rendered,
                "metadata": {**rendered["metadata"], "resourceVersion": str(self.next_version())},
            },
        )
        await self.node.workers.remove(uid)
        return rendered

    def _deleted_view(self, record: PodRecord) -> dict[str, Any]:
        shown = self.render_pod(record)
        return {
            **shown,
            "metadata": {
                **shown["metadata"],
                "deletionTimestamp": self.now_stamp(),
                "deletionGracePeriodSeconds": 0,
            },
        }

    def patch_pod(
        self,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        dry_run: bool = False,
        merge: SpecMerge = SpecMerge.JSON,
    ) -> dict[str, Any]:
        """Labels, annotations and container images change; the rest of a pod is immutable.

        `merge` says how the patch's spec meets the stored one (see `podupdate.SpecMerge`).
        An image change restarts that container through the image manager (`PodWorkers.update`).
        """
        record = self._record(namespace, name)
        current = record.manifest
        if not isinstance(patch.get("metadata", {}), Mapping):
            raise bad_request("metadata must be an object")
        meta_patch = patch.get("metadata") or {}
        changed = {k for k in set(patch) - {"metadata", "spec"} if patch[k] != current.get(k)} - {
            "status"
        }  # a status sent to the main resource is ignored, as the API server does
        meta_changed = {
            k
            for k in set(meta_patch) - {"labels", "annotations"}
            if meta_patch[k] != current["metadata"].get(k)
        }
        if changed or meta_changed:
            field = min(changed or {f"metadata.{k}" for k in meta_changed})
            raise invalid(
                "Pod",
                name,
                [
                    FieldError(
                        field,
                        "FieldValueForbidden",
                        "Forbidden: this simulation only lets pod updates change labels, "
                        "annotations and container images",
                    )
                ],
            )
        patched = merge_patch(current, {"metadata": meta_patch})
        check_string_maps(patched["metadata"])
        require_valid("Pod", name, metadata_causes(patched["metadata"]))
        new_pod: Pod | None = None
        if "spec" in patch:
            patched["spec"] = patch_spec(current.get("spec") or {}, patch["spec"], merge)
            try:
                new_pod = pod_from_manifest(
                    patched,
                    namespace=namespace,
                    always_pull_images=self.config.always_pull_images,
                    uid=record.status.pod.uid,
                )
            except PodInvalidError as exc:
                raise invalid("Pod", exc.name, exc.causes) from None
            default_spec(patched["spec"], new_pod)
            check_spec_update(name, current.get("spec") or {}, patched["spec"])
        self._patched_version(patched, dry_run=dry_run)
        if dry_run:
            return self._render_pod(PodRecord(patched, record.status))
        with self.state.transaction():
            self.state.put_object("Pod", namespace, name, patched)
        record.manifest = patched
        record.rendered = None
        if new_pod is not None and new_pod != record.status.pod:
            self.node.workers.update(record.status, new_pod)
        rendered = self.render_pod(record)
        self.feed.publish("Pod", MODIFIED, rendered)
        return rendered

    def replace_pod(
        self, namespace: str, name: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """PUT: the body is the whole new pod, checked against the stored one as `patch_pod`
        checks a patch; a stale `resourceVersion` is a 409 Conflict, as the API server's
        optimistic concurrency answers."""
        record = self._record(namespace, name)
        body = check_kind(body, "Pod")
        meta = body_meta(body, namespace)
        if meta.get("name") != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})"
            )
        version = meta.get("resourceVersion")
        if version and version != record.manifest["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on pods "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
                details={"name": name, "kind": "pods"},
            )
        old_meta = record.manifest["metadata"]
        patch: dict[str, Any] = {"metadata": {}, "spec": body.get("spec") or {}}
        for key in ("labels", "annotations"):  # replaced: keys the body lacks are removed
            new = meta.get(key) or {}
            gone = {k: None for k in old_meta.get(key) or {} if k not in new}
            patch["metadata"][key] = {**gone, **new} if (new or gone) else None
        patch.update({k: v for k, v in body.items() if k not in {"metadata", "spec"}})
        return self.patch_pod(namespace, name, patch, dry_run=dry_run, merge=SpecMerge.REPLACE)

    def render_pod(self, record: PodRecord) -> dict[str, Any]:
        """The pod as the API shows it; shared, never to be modified (see PodRecord)."""
        if record.rendered is None:
            record.rendered = self._render_pod(record)
        return record.rendered

    def _render_pod(self, record: PodRecord) -> dict[str, Any]:
        status = record.status
        doc = copy.deepcopy(record.manifest)
        stamp = self.clock.rfc3339
        initialized, init_message = initialized_condition(status)
        ready, ready_message = containers_ready_condition(status)
        created = doc["metadata"]["creationTimestamp"]
        ready_at = stamp(status.images_ready_at) if status.images_ready_at is not None else created

        def condition(kind: str, ok: bool, reason: str = "") -> dict[str, Any]:
            cond: dict[str, Any] = {
                "type": kind,
                "status": "True" if ok else "False",
                "lastProbeTime": None,
                "lastTransitionTime": ready_at if ok else created,
            }
            if not ok and reason:
                cond["reason"] = reason
            return cond

        not_ready = "ContainersNotReady"
        doc["status"] = {
            "phase": "Running" if ready else "Pending",
            "conditions": [
                condition("PodReadyToStartContainers", ok=True),
                condition("Initialized", initialized, "ContainersNotInitialized"),
                condition("Ready", ready, not_ready),
                condition("ContainersReady", ready, not_ready),
                condition("PodScheduled", ok=True),
            ],
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": created,
            "qosClass": "BestEffort",
            "containerStatuses": [self._container_json(status, cs) for cs in status.statuses],
        }
        if not initialized:
            doc["status"]["conditions"][1]["message"] = init_message
        if not ready:
            for cond in doc["status"]["conditions"][2:4]:
                cond["message"] = ready_message
        if status.init_statuses:
            doc["status"]["initContainerStatuses"] = [
                self._container_json(status, cs) for cs in status.init_statuses
            ]
        return doc

    def _container_json(self, status: PodStatus, cs: ContainerStatus) -> dict[str, Any]:
        image_id = ""
        if cs.image_id:
            record = self.node.store.get(cs.image_id)
            image_id = record.repo_digests[0] if record and record.repo_digests else cs.image_id
        out: dict[str, Any] = {
            "name": cs.container.name,
            "image": cs.container.image,
            "imageID": image_id,
            "ready": cs.state is State.RUNNING,
            "restartCount": cs.restarts,
            "started": cs.state is State.RUNNING,
        }
        started = self.clock.rfc3339(cs.started_at) if cs.started_at is not None else None
        if cs.state is State.WAITING:
            waiting: dict[str, str] = {"reason": cs.reason}
            if cs.message:
                waiting["message"] = cs.message
            out["state"] = {"waiting": waiting}
        elif cs.state is State.RUNNING:
            out["state"] = {"running": {"startedAt": started}}
        else:
            out["state"] = {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": started,
                    "finishedAt": started,
                }
            }
        if cs.state is not State.WAITING:
            digest = hashlib.sha256(f"{status.pod.uid}/{cs.container.name}".encode()).hexdigest()
            out["containerID"] = f"containerd://{digest}"
        return out

    def _new_object(
        self, table: ObjectTable, namespace: str, body: Mapping[str, Any], *, dry_run: bool
    ) -> tuple[Mapping[str, Any], dict[str, Any]]:
        """The checks every create of a stored kind shares, and its fresh metadata."""
        body = check_kind(body, table.kind)
        meta = body_meta(body, namespace)
        name = require_name(meta, table.kind)
        require_valid(
            table.kind,
            name,
            name_causes(name) + namespace_causes(namespace) + metadata_causes(meta),
        )
        table.require_absent(namespace, name)
        doc = self._new_meta_doc(table.kind, namespace, name, dry_run=dry_run)
        doc["metadata"].update({k: v for k, v in meta.items() if k in {"labels", "annotations"}})
        return body, doc

    # -- secrets -----------------------------------------------------------------------------
    def create_secret(
        self, namespace: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        body, doc = self._new_object(self.secrets, namespace, body, dry_run=dry_run)
        name = doc["metadata"]["name"]
        secret_type = body.get("type") or "Opaque"
        if not isinstance(secret_type, str):
            raise invalid(
                "Secret",
                name,
                [FieldError("type", "FieldValueInvalid", "Invalid value: must be a string")],
            )
        doc["type"] = secret_type
        doc["data"] = secret_data(body, name)
        validate_secret(doc)
        if not dry_run:
            self.secrets.put(doc)
        return redact_secret(doc)

    def secret(self, namespace: str, name: str) -> dict[str, Any]:
        return self.secrets.require(namespace, name)

    def delete_secret(self, namespace: str, name: str, *, dry_run: bool = False) -> dict[str, Any]:
        if dry_run:
            return redact_secret(self.secrets.require(namespace, name))
        return redact_secret(self.secrets.remove(namespace, name))

    def patch_secret(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        before = self.secret(namespace, name)
        doc = keep_shape(merge_patch(before, patch), "Secret")
        check_patched_meta(doc, before)
        require_valid("Secret", name, metadata_causes(doc["metadata"]))
        if not isinstance(doc.get("type", "Opaque"), str):
            raise invalid(
                "Secret",
                name,
                [FieldError("type", "FieldValueInvalid", "Invalid value: must be a string")],
            )
        if doc.get("type") != before.get("type"):
            raise invalid(
                "Secret",
                name,
                [
                    FieldError(
                        "type",
                        "FieldValueInvalid",
                        f'Invalid value: "{doc.get("type")}": field is immutable',
                    )
                ],
            )
        if "stringData" in doc or "data" in patch:
            doc["data"] = secret_data(doc, name)  # the checks create applies, base64 included
            doc.pop("stringData", None)
        validate_secret(doc)
        self._patched_version(doc, dry_run=dry_run)
        if not dry_run:
            self.secrets.put(doc)
        return redact_secret(doc)

    # -- service accounts --------------------------------------------------------------------
    def create_service_account(
        self, namespace: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        body, doc = self._new_object(self.service_accounts, namespace, body, dry_run=dry_run)
        name = doc["metadata"]["name"]
        validate_pull_secret_refs(body.get("imagePullSecrets"), "ServiceAccount", name)
        if body.get("imagePullSecrets"):
            doc["imagePullSecrets"] = [{"name": r["name"]} for r in body["imagePullSecrets"]]
        if not dry_run:
            self.service_accounts.put(doc)
        return copy.deepcopy(doc)

    def service_account(self, namespace: str, name: str) -> dict[str, Any]:
        return self.service_accounts.require(namespace, name)

    def delete_service_account(
        self, namespace: str, name: str, *, dry_run: bool = False
    ) -> dict[str, Any]:
        if dry_run:
            return copy.deepcopy(self.service_accounts.require(namespace, name))
        return self.service_accounts.remove(namespace, name)

    def patch_service_account(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        before = self.service_account(namespace, name)
        doc = keep_shape(merge_patch(before, patch), "ServiceAccount")
        check_patched_meta(doc, before)
        require_valid("ServiceAccount", name, metadata_causes(doc["metadata"]))
        validate_pull_secret_refs(doc.get("imagePullSecrets"), "ServiceAccount", name)
        self._patched_version(doc, dry_run=dry_run)
        if not dry_run:
            self.service_accounts.put(doc)
        return copy.deepcopy(doc)

    # -- the node ----------------------------------------------------------------------------
    def render_node(self) -> dict[str, Any]:
        return render_node(
            self.node, self.clock, self.node_uid, self.node_created, self._node_version
        )


def _record_from_json(doc: Mapping[str, Any]) -> ImageRecord:
    return ImageRecord(
        id=doc["id"],
        layers=tuple(Layer(d, s) for d, s in doc["layers"]),
        repo_tags=list(doc["repoTags"]),
        repo_digests=list(doc["repoDigests"]),
    )
