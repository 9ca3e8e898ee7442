"""Pods: their storage and admission on the API side, and the kubelet's status manager.

A pod is validated and defaulted once at creation (pull policy, AlwaysPullImages, the service
account's imagePullSecrets), bound to a node as the scheduler would (`placement.Placer`:
`spec.nodeName`, a `nodeSelector` on the nodes' labels, else the node with the fewest pods, a
cordoned node never), then handed to that node's pod workers. A pod no node takes stays Pending,
unscheduled, with the scheduler's `FailedScheduling` event, and is offered again when a node's
labels or cordon change (`node_updated`), when a pod bound to a node is removed, and at least
every five minutes besides (`unschedulable.UnschedulablePods`). What the workers report is
the status manager's business here: changes are gathered per loop turn (a sync reports each
container as it becomes ready), then each changed pod is saved, takes the next resourceVersion
and is published once on the change feed, as the kubelet's status manager writes a pod's status
to the apiserver once per change, not once per container.

Every write is saved before memory changes, keyed by UID: a refused write leaves memory as it
was, and a pod created under the name of one being deleted is another object.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import secrets as pysecrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubesim_images.clock import WallClock
from kubesim_images.daemon.changefeed import ADDED, DELETED, MODIFIED, ChangeFeed
from kubesim_images.daemon.kube import ApiError, already_exists, bad_request, invalid, not_found
from kubesim_images.daemon.objects import (
    ObjectTable,
    body_meta,
    check_kind,
    check_replacement,
    check_string_maps,
    drop_empty_maps,
    merge_patch,
)
from kubesim_images.daemon.options import NO_OPTIONS, DeleteOptions, check_preconditions
from kubesim_images.daemon.podcodec import status_from_json, status_json
from kubesim_images.daemon.podstatus import (
    STATUS_SYNC_PERIOD,
    check_status,
    foreign_conditions,
    kubelet_agrees,
    readiness_gate_messages,
)
from kubesim_images.daemon.podupdate import (
    SpecMerge,
    check_spec_update,
    default_spec,
    patch_spec,
)
from kubesim_images.daemon.qos import default_requests, qos_class
from kubesim_images.daemon.quantities import check_pod_quantities
from kubesim_images.daemon.shapes import check_pod
from kubesim_images.daemon.unschedulable import UnschedulablePods
from kubesim_images.daemon.validation import (
    container_count_causes,
    metadata_causes,
    namespace_causes,
    require_valid,
)
from kubesim_images.events import EventSink, scheduler_event
from kubesim_images.logging import get_logger
from kubesim_images.node import Node
from kubesim_images.placement import Placer, Taint, Unschedulable
from kubesim_images.pod import FieldError, Pod, PodInvalidError, pod_from_manifest
from kubesim_images.podworkers import (
    ContainerStatus,
    PodStatus,
    State,
    containers_ready_condition,
    initialized_condition,
)
from kubesim_images.state import StateError, StateStore
from kubesim_images.tasks import create_guarded_task, stop_task

_log = get_logger()


@dataclass(slots=True)
class PodRecord:
    manifest: dict[str, Any]
    status: PodStatus  # `node` is "" while no node has taken the pod
    # The pod as the API shows it, rendered once per change: every GET, LIST and watch shares
    # it, so nothing may modify it. Cleared by every change of the manifest or the status.
    rendered: dict[str, Any] | None = None
    unschedulable: str | None = None  # the scheduler's reason no node takes it
    # When the kubelet stopped the containers of the pod being deleted (ns): from then on it
    # shows them terminated and unready, as the kubelet reports them before the pod goes.
    stopped_at: int | None = None
    # A status written through pods/status is what the API shows (`manifest["status"]`) until
    # the pod's kubelet or the scheduler writes its own (see podstatus).
    status_written: bool = False


class PodStore:
    """The pods of the nodes: the API's storage for the kind, and the status manager."""

    def __init__(
        self,
        nodes: Mapping[str, Node],
        placer: Placer,
        state: StateStore,
        feed: ChangeFeed,
        clock: WallClock,
        service_accounts: ObjectTable,
        events: EventSink,
        *,
        always_pull_images: bool,
    ) -> None:
        self._nodes = nodes
        self._placer = placer
        self._events = events
        self._state = state
        self._feed = feed
        self._clock = clock
        self._service_accounts = service_accounts
        self._always_pull_images = always_pull_images
        self.records: dict[str, PodRecord] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._dirty: dict[str, PodStatus] = {}
        self._flush: asyncio.Handle | None = None
        # The namespace controller's waits for a namespace's pods to be gone.
        self._gone_waiters: list[asyncio.Future[None]] = []
        # The kubelet's kills of deleted pods, by UID.
        self._killing: dict[str, asyncio.Task[None]] = {}
        # How soon a pod's kubelet writes its own status over one written through pods/status
        # (tests shorten it); the pending reconciles, by UID.
        self.status_sync_period = STATUS_SYNC_PERIOD
        self._reconciles: dict[str, asyncio.TimerHandle] = {}
        # The scheduler's queue of pods no node took, tried again periodically.
        self.unschedulable = UnschedulablePods(self._retry_periodically)
        self._retry_soon: asyncio.Handle | None = None

    def restore(self) -> None:
        """Load the saved pods with their statuses and start their workers, each on the node it
        is bound to; a pod no node took is offered to the nodes again (the config may have
        changed). One bound to a node no longer configured is deleted, as the pod garbage
        collector deletes a pod whose node is gone (PodGC's orphaned pods: at once, grace 0),
        so that its ReplicaSet, started after this, makes a new one the nodes can run. A pod
        deleted while the daemon was down resumes its termination."""
        statuses = self._state.pod_statuses()
        for saved in self._state.objects("Pod"):
            pod = self._pod_from_stored(saved)
            bound = (saved.get("spec") or {}).get("nodeName") or None
            if bound is not None and bound not in self._nodes:
                with self._state.transaction():
                    self._state.delete_object("Pod", pod.uid)
                    self._state.delete_pod_status(pod.uid)
                _log.info(
                    "pod_orphaned_deleted",
                    pod=f"{pod.namespace}/{pod.name}",
                    node=bound,
                    reason="PodGC: node no longer exists",
                )
                continue
            target = self._place(saved, pod, bound)
            doc = saved
            if bound is None and isinstance(target, str):
                doc = {**saved, "spec": {**saved["spec"], "nodeName": target}}
                with self._state.transaction():
                    self._state.put_object("Pod", pod.namespace, pod.name, doc)
            node = target if isinstance(target, str) else ""
            status = status_from_json(pod, statuses.get(pod.uid), self._clock, node)
            record = PodRecord(doc, status)
            if isinstance(target, Unschedulable):
                record.unschedulable = target.message
                if target.message is not None:
                    self.unschedulable.tried(pod.uid)
            self.records[pod.uid] = record
            self._keys[(pod.namespace, pod.name)] = pod.uid
            if node:
                self._nodes[node].resume_pod(status)
            if "deletionTimestamp" in doc["metadata"]:
                self._start_kill(pod.uid, node, remove=True)
        for uid in statuses.keys() - self.records.keys():  # left by a delete before UID keying
            self._state.delete_pod_status(uid)

    async def stop(self) -> None:
        """Save what the last loop turn changed (the workers have stopped); a kill under way
        resumes at the next start (the pod is saved marked for deletion)."""
        for task in list(self._killing.values()):
            await stop_task(task)
        await self.unschedulable.stop()
        if self._retry_soon is not None:
            self._retry_soon.cancel()
            self._retry_soon = None
        for handle in self._reconciles.values():
            handle.cancel()
        self._reconciles.clear()
        if self._flush is not None:
            self._flush.cancel()
            self._flush_statuses()

    async def wait_gone(self, namespace: str) -> None:
        """Return once no pod of `namespace` is left."""
        while any(r.status.pod.namespace == namespace for r in self.records.values()):
            waiter = asyncio.get_running_loop().create_future()
            self._gone_waiters.append(waiter)
            await waiter

    def _pod_removed(self) -> None:
        waiters, self._gone_waiters = self._gone_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def namespaces(self) -> set[str]:
        return {r.status.pod.namespace for r in self.records.values()}

    def forget_renders(self, node: str | None = None) -> None:
        """A pod's imageID shows the image's digest: a node's changed store re-renders its
        pods (every pod when `node` is None)."""
        for record in self.records.values():
            if node is None or record.status.node == node:
                record.rendered = None

    def _now_stamp(self) -> str:
        return self._clock.rfc3339(self._clock.now_ns())

    def _patched_version(self, doc: dict[str, Any], *, dry_run: bool) -> None:
        """A patched object's resourceVersion: the next one, or for a dry run the current."""
        if not dry_run:
            doc["metadata"]["resourceVersion"] = str(self._feed.next_version())

    def status_changed(self, status: PodStatus) -> None:
        """Note the change; saving and rendering happen once per loop turn, not per container.

        A sync reports each container as it becomes ready; rendering the whole pod on each
        report made a pod of N present images cost N renders of N containers.
        """
        record = self.records.get(status.pod.uid)
        if record is not None:
            record.rendered = None  # what a GET returns from now on is the new status
        self._dirty[status.pod.uid] = status
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_soon(self._flush_statuses)

    def _flush_statuses(self) -> None:
        self._flush = None
        dirty, self._dirty = self._dirty, {}
        for uid, status in dirty.items():
            record = self.records.get(uid)
            if record is None or record.status is not status:
                continue  # deleted while its sync was finishing
            self._publish_status(record, save_status=True)

    def _publish_status(self, record: PodRecord, *, save_status: bool) -> None:
        """A status change is a write like any other: the pod's next resourceVersion, saved
        (with the status, when it is to survive a restart) before memory changes, then
        published as MODIFIED."""
        version = str(self._feed.next_version())
        manifest = {
            **record.manifest,
            "metadata": {**record.manifest["metadata"], "resourceVersion": version},
        }
        meta = manifest["metadata"]
        with self._state.transaction():
            self._state.put_object("Pod", meta["namespace"], meta["name"], manifest)
            if save_status:
                status = record.status
                self._state.put_pod_status(status.pod.uid, status_json(status, self._clock))
        record.manifest = manifest
        record.rendered = None
        record.status_written = False
        self._feed.publish("Pod", MODIFIED, self.render(record))

    def write_status(
        self,
        namespace: str,
        name: str,
        written: Any,
        *,
        dry_run: bool = False,
        replacing: bool = False,
    ) -> dict[str, Any]:
        """A write to pods/status: `written` is the whole pod as it is to be (a patch already
        applied to the pod as shown, or, `replacing`, a PUT's body, whose resourceVersion must
        be current). Its status and its labels and annotations are taken; the rest stays as
        stored (the apiserver's status strategy). Saved before memory changes, then published
        MODIFIED; the pod's kubelet reconciles after `status_sync_period` (see podstatus)."""
        record = self._record(namespace, name)
        if not isinstance(written, Mapping):
            raise bad_request("the request body must be a JSON or YAML object")
        meta = written.get("metadata")
        if not isinstance(meta, Mapping):
            raise bad_request("metadata must be an object")
        if replacing:
            check_replacement(meta, "pods", name, record.manifest["metadata"]["resourceVersion"])
        _check_identity(meta, record.manifest["metadata"])
        shown = self.render(record)
        status = check_status(name, written.get("status"))
        qos = (shown.get("status") or {}).get("qosClass")
        if qos is not None:  # set at creation, immutable (podStatusStrategy)
            status["qosClass"] = qos
        new_meta = {**record.manifest["metadata"]}
        for key in ("labels", "annotations"):
            new_meta.pop(key, None)
            if meta.get(key) is not None:
                new_meta[key] = meta[key]
        drop_empty_maps(new_meta)
        check_string_maps(new_meta)
        require_valid("Pod", name, metadata_causes(new_meta))
        if status == shown.get("status") and new_meta == record.manifest["metadata"]:
            return shown  # nothing changed: no new version, no event
        manifest = {**record.manifest, "metadata": new_meta, "status": status}
        self._patched_version(manifest, dry_run=dry_run)
        if dry_run:
            return self._render_pod(PodRecord(manifest, record.status, status_written=True))
        with self._state.transaction():
            self._state.put_object("Pod", namespace, name, manifest)
        record.manifest = manifest
        record.status_written = True
        record.rendered = None
        uid = record.status.pod.uid
        if record.status.node:
            old = self._reconciles.pop(uid, None)
            if old is not None:
                old.cancel()
            # A pod with readiness gates is synced at once (its Ready follows them), any
            # other at the status manager's next periodic sync.
            gated = bool((manifest.get("spec") or {}).get("readinessGates"))
            delay = 0.0 if gated else self.status_sync_period
            loop = asyncio.get_running_loop()
            self._reconciles[uid] = loop.call_later(delay, self._reconcile_status, uid)
        rendered = self.render(record)
        self._feed.publish("Pod", MODIFIED, rendered)
        _log.info("pod_status_written", pod=f"{namespace}/{name}")
        return rendered

    def _reconcile_status(self, uid: str) -> None:
        """The kubelet status manager's periodic sync of one pod: where the status written
        through the API differs from its own in what it owns, it writes its own."""
        self._reconciles.pop(uid, None)
        record = self.records.get(uid)
        if record is None or not record.status_written or not record.status.node:
            return
        own = PodRecord(record.manifest, record.status, stopped_at=record.stopped_at)
        kubelets = self._render_pod(own)["status"]
        if kubelet_agrees(kubelets, record.manifest.get("status") or {}):
            return  # nothing of its own to write back: the written status stays
        try:
            self._publish_status(record, save_status=False)
        except StateError as exc:  # the next sync tries again, as the status manager does
            _log.warning("pod_status_reconcile_failed", pod_uid=uid, error=str(exc))
            self._reconciles[uid] = asyncio.get_running_loop().call_later(
                self.status_sync_period, self._reconcile_status, uid
            )

    def _place(
        self, manifest: Mapping[str, Any], pod: Pod, bound: str | None
    ) -> str | Unschedulable:
        spec = manifest.get("spec")
        tolerations = spec.get("tolerations") if isinstance(spec, Mapping) else None
        return self._placer.place(
            bound,
            pod.node_selector,
            pod.node_affinity,
            tolerations=tolerations,
        )

    def node_updated(
        self,
        node: str,
        labels: Mapping[str, str],
        *,
        unschedulable: bool,
        taints: Sequence[Taint] = (),
    ) -> None:
        """A node's labels, cordon or taints changed: the scheduler's view of it, and every
        pending pod offered to the nodes again (kube-scheduler moves its unschedulable pods
        back to the active queue on a node update). A pod now placed is bound (its `Scheduled`
        event comes from the binding, see podevents); one still refused for another reason gets
        the new `FailedScheduling`."""
        self._placer.update(node, labels, unschedulable=unschedulable, taints=taints)
        self._retry_pending()

    def _retry_pending(self) -> None:
        """Every pending pod offered to the nodes again, oldest first."""
        self._retry_soon = None
        pending = [
            r
            for r in self.records.values()
            if not r.status.node
            and r.unschedulable is not None
            and "deletionTimestamp" not in r.manifest["metadata"]
        ]
        for record in sorted(pending, key=lambda r: r.manifest["metadata"]["creationTimestamp"]):
            self._retry(record)

    def _pod_unbound(self) -> None:
        """A pod bound to a node was removed (kube-scheduler's AssignedPodDelete event): the
        pending pods are offered again, once, after the removal's loop turn."""
        if self._retry_soon is None and len(self.unschedulable):
            loop = asyncio.get_running_loop()
            self._retry_soon = loop.call_soon(self._retry_pending_guarded)

    def _retry_pending_guarded(self) -> None:
        try:
            self._retry_pending()
        except StateError as exc:  # the next flush tries again
            _log.warning("schedule_retry_failed", error=str(exc))

    def _retry_periodically(self, uid: str) -> None:
        """The periodic flush's try of one pod (see unschedulable.py)."""
        record = self.records.get(uid)
        if (
            record is None
            or record.status.node
            or "deletionTimestamp" in record.manifest["metadata"]
        ):
            self.unschedulable.discard(uid)
            return
        self._retry(record, periodic=True)

    def _retry(self, record: PodRecord, *, periodic: bool = False) -> None:
        pod = record.status.pod
        target = self._place(record.manifest, pod, None)
        meta = record.manifest["metadata"]
        if isinstance(target, Unschedulable):
            if target.message is not None:
                self.unschedulable.tried(pod.uid)
            if target.message is None or target.message == record.unschedulable:
                if periodic and target.message is not None:
                    # Another failed attempt: its event again (aggregated, `(x2 over 5m)`);
                    # the status is unchanged, so no write.
                    self._events.emit(scheduler_event(self._clock.now_ns(), pod, target.message))
                return
            manifest = {**record.manifest, "metadata": {**meta}}
            status = record.status
        else:
            spec = {**record.manifest["spec"], "nodeName": target}
            manifest = {**record.manifest, "metadata": {**meta}, "spec": spec}
            status = status_from_json(pod, None, self._clock, target)
        manifest["metadata"]["resourceVersion"] = str(self._feed.next_version())
        try:
            with self._state.transaction():
                self._state.put_object("Pod", pod.namespace, pod.name, manifest)
                self._state.put_pod_status(pod.uid, status_json(status, self._clock))
        except BaseException:
            if isinstance(target, str):
                self._placer.release(target)
            raise
        record.manifest = manifest
        record.status = status
        record.rendered = None
        record.status_written = False
        if isinstance(target, str):
            record.unschedulable = None
            self.unschedulable.discard(pod.uid)
            self._nodes[target].resume_pod(status)
            _log.info("pod_scheduled", pod=f"{pod.namespace}/{pod.name}", node=target)
        elif target.message is not None:
            record.unschedulable = target.message
            self._events.emit(scheduler_event(self._clock.now_ns(), pod, target.message))
        self._feed.publish("Pod", MODIFIED, self.render(record))

    def _pod_from_stored(self, doc: Mapping[str, Any]) -> Pod:
        meta = doc["metadata"]
        return pod_from_manifest(doc, namespace=meta["namespace"], uid=meta["uid"])

    def create(
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
            namespace_causes(namespace)
            + metadata_causes(meta)
            + container_count_causes(spec)
            + check_pod_quantities(body),
        )
        sa_name = "default"
        if isinstance(spec, Mapping):
            sa_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
            if not isinstance(sa_name, str):
                raise bad_request("spec.serviceAccountName must be a string")
        account = self._service_accounts.get((namespace, sa_name))
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
                always_pull_images=self._always_pull_images,
                uid=str(uuid.uuid4()),
                extra_pull_secrets=extra,
            )
        except PodInvalidError as exc:
            raise invalid("Pod", exc.name, exc.causes) from None
        if (namespace, pod.name) in self._keys:
            raise already_exists("pods", pod.name)
        if dry_run:  # what the API server would store: not yet scheduled, no node reported
            stored = self._stored_pod(pod, manifest, sa_name, None, dry_run=True)
            return {**stored, "status": {"phase": "Pending", "qosClass": qos_class(stored["spec"])}}
        target = self._place(manifest, pod, pod.node_name or None)
        node = target if isinstance(target, str) else ""
        stored = self._stored_pod(pod, manifest, sa_name, node or None)
        status = status_from_json(pod, None, self._clock, node)
        try:
            with self._state.transaction():  # saved first: a refused write leaves memory as is
                self._state.put_object("Pod", namespace, pod.name, stored)
                self._state.put_pod_status(pod.uid, status_json(status, self._clock))
        except BaseException:
            if node:
                self._placer.release(node)
            raise
        record = PodRecord(stored, status)
        self.records[pod.uid] = record
        self._keys[(namespace, pod.name)] = pod.uid
        if node:
            self._nodes[node].resume_pod(status)
        elif isinstance(target, Unschedulable):
            record.unschedulable = target.message
            if target.message is not None:
                self.unschedulable.tried(pod.uid)
                self._events.emit(scheduler_event(self._clock.now_ns(), pod, target.message))
        rendered = self.render(record)
        self._feed.publish("Pod", ADDED, rendered)
        _log.info("pod_created", pod=f"{namespace}/{pod.name}", node=node or None)
        return rendered

    def _stored_pod(
        self,
        pod: Pod,
        manifest: Mapping[str, Any],
        sa_name: str,
        node: str | None,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """The object as the API server stores it after defaulting, admission and binding
        (`node` None: not bound, `spec.nodeName` as written)."""
        spec = copy.deepcopy(dict(manifest.get("spec") or {}))
        default_spec(spec, pod)
        default_requests(spec)
        if pod.image_pull_secrets:
            spec["imagePullSecrets"] = [{"name": n} for n in pod.image_pull_secrets]
        spec["serviceAccountName"] = sa_name
        spec["serviceAccount"] = sa_name
        if node is not None:
            spec["nodeName"] = node
        meta = dict(manifest.get("metadata") or {})
        meta.update(name=pod.name, namespace=pod.namespace, uid=pod.uid)
        if not dry_run:
            meta["resourceVersion"] = str(self._feed.next_version())
        meta["creationTimestamp"] = self._now_stamp()
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}

    def _record(self, namespace: str, name: str) -> PodRecord:
        uid = self._keys.get((namespace, name))
        if uid is None:
            raise not_found("pods", name)
        return self.records[uid]

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return self.render(self._record(namespace, name))

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        records = sorted(
            self.records.values(), key=lambda r: (r.status.pod.namespace, r.status.pod.name)
        )
        return [
            self.render(r)
            for r in records
            if namespace is None or r.status.pod.namespace == namespace
        ]

    async def delete(
        self,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        options: DeleteOptions = NO_OPTIONS,
    ) -> dict[str, Any]:
        """Graceful deletion: the apiserver's part, then the kubelet's.

        With a grace period (the request's, else the pod's terminationGracePeriodSeconds) the
        pod is marked (deletionTimestamp = now + grace, deletionGracePeriodSeconds), saved and
        published MODIFIED; kubectl shows it Terminating. The kubelet then kills it
        (`PodWorkers.kill`: a pull under way fails with `context canceled`, each running
        container gets Normal `Killing`); its containers exit at once, which its status says
        (MODIFIED: terminated, unready, `0/1 Terminating`), and the pod is removed: a final
        DELETED. A grace period of 0 (`--force`) removes it at once and
        the kubelet kills it afterwards. A delete of a pod already terminating only shortens
        its grace period. A dry run answers as the delete would and changes nothing.
        """
        record = self._record(namespace, name)
        check_preconditions(record.manifest, options, "pods")
        meta = record.manifest["metadata"]
        grace = options.grace_period
        if grace is None:
            grace = int(
                (record.manifest.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            )
        marked = meta.get("deletionGracePeriodSeconds")
        if marked is not None and grace >= int(marked):
            return self.render(record)  # already terminating, no sooner than asked
        if dry_run:
            return self._marked_view(record, grace)
        uid = record.status.pod.uid
        if grace == 0:
            shown = self._remove(record)
            self._start_kill(uid, record.status.node, remove=False)
            return shown
        marked_manifest = self._marked_view(record, grace, rendered=False)
        marked_manifest["metadata"]["resourceVersion"] = str(self._feed.next_version())
        with self._state.transaction():
            self._state.put_object("Pod", namespace, name, marked_manifest)
        record.manifest = marked_manifest
        record.rendered = None
        rendered = self.render(record)
        self._feed.publish("Pod", MODIFIED, rendered)
        _log.info("pod_terminating", pod=f"{namespace}/{name}", grace_period=grace)
        self._start_kill(uid, record.status.node, remove=True)
        return rendered

    def _marked_view(
        self, record: PodRecord, grace: int, *, rendered: bool = True
    ) -> dict[str, Any]:
        """The pod (or its manifest) marked for deletion after `grace` seconds."""
        shown = self.render(record) if rendered else record.manifest
        deadline = self._clock.now_ns() + grace * 1_000_000_000
        return {
            **shown,
            "metadata": {
                **shown["metadata"],
                "deletionTimestamp": self._clock.rfc3339(deadline),
                "deletionGracePeriodSeconds": grace,
            },
        }

    def _start_kill(self, uid: str, node: str, *, remove: bool) -> None:
        if uid not in self._killing:
            self._killing[uid] = create_guarded_task(
                self._kill(uid, node, remove=remove), name=f"pod-kill:{uid}", pod_uid=uid
            )

    async def _kill(self, uid: str, node: str, *, remove: bool) -> None:
        """The kubelet's part of a deletion: the pod's node kills it (a pod no node took has
        nothing to kill), then, its containers gone, the status manager deletes the object."""
        try:
            owner = self._nodes.get(node)
            if owner is not None:
                owner.kill_pod(uid)
            record = self.records.get(uid)
            if remove and record is not None:
                self._containers_stopped(record)
                self._remove(record)
        finally:
            self._killing.pop(uid, None)

    def _containers_stopped(self, record: PodRecord) -> None:
        """The status update the kubelet writes once a deleted pod's containers exited: each
        one that had started is terminated and unready. Saved and published as any status
        change; nothing to say for a pod none of whose containers started."""
        started = [*record.status.statuses, *record.status.init_statuses]
        if not any(cs.state is not State.WAITING for cs in started):
            return
        record.stopped_at = self._clock.now_ns()
        self._publish_status(record, save_status=False)

    def _remove(self, record: PodRecord) -> dict[str, Any]:
        """The object's removal: saved, forgotten, then published as a DELETED change at a
        version of its own. Returns the pod as last shown."""
        pod = record.status.pod
        uid = pod.uid
        with self._state.transaction():
            self._state.delete_object("Pod", uid)
            self._state.delete_pod_status(uid)
        del self._keys[(pod.namespace, pod.name)]
        del self.records[uid]
        self._dirty.pop(uid, None)
        reconcile = self._reconciles.pop(uid, None)
        if reconcile is not None:
            reconcile.cancel()
        self.unschedulable.discard(uid)
        if record.status.node in self._nodes:
            self._placer.release(record.status.node)
            self._pod_unbound()
        shown = self.render(record)
        if "deletionTimestamp" not in shown["metadata"]:
            shown = self._marked_view(record, 0)
        self._feed.publish(
            "Pod",
            DELETED,
            {
                **shown,
                "metadata": {
                    **shown["metadata"],
                    "resourceVersion": str(self._feed.next_version()),
                },
            },
        )
        _log.info("pod_deleted", pod=f"{pod.namespace}/{pod.name}")
        self._pod_removed()
        return shown

    def patch(
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
        if "__replace__" in patch:  # a JSON patch: the whole object as it would become
            patch = self._replacing_patch(record, patch["__replace__"])
        if not isinstance(patch.get("metadata", {}), Mapping):
            raise bad_request("metadata must be an object")
        # creationTimestamp is the stored one whatever an update says (see keep_created).
        meta_patch = {
            k: v for k, v in (patch.get("metadata") or {}).items() if k != "creationTimestamp"
        }
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
        drop_empty_maps(patched["metadata"])
        check_string_maps(patched["metadata"])
        require_valid("Pod", name, metadata_causes(patched["metadata"]))
        new_pod: Pod | None = None
        if "spec" in patch:
            patched["spec"] = patch_spec(current.get("spec") or {}, patch["spec"], merge)
            try:
                new_pod = pod_from_manifest(
                    patched,
                    namespace=namespace,
                    always_pull_images=self._always_pull_images,
                    uid=record.status.pod.uid,
                )
            except PodInvalidError as exc:
                raise invalid("Pod", exc.name, exc.causes) from None
            default_spec(patched["spec"], new_pod)
            default_requests(patched["spec"])
            check_spec_update(name, current.get("spec") or {}, patched["spec"])
        if patched == current:
            # Nothing changed: the apiserver keeps the resourceVersion and sends no event, so a
            # second `kubectl replace` of the same file still holds the current version.
            return self.render(record)
        self._patched_version(patched, dry_run=dry_run)
        if dry_run:
            return self._render_pod(PodRecord(patched, record.status))
        with self._state.transaction():
            self._state.put_object("Pod", namespace, name, patched)
        record.manifest = patched
        record.rendered = None
        node = self._nodes.get(record.status.node)
        if new_pod is not None and new_pod != record.status.pod and node is not None:
            node.update_pod(record.status, new_pod)
        rendered = self.render(record)
        self._feed.publish("Pod", MODIFIED, rendered)
        return rendered

    def _replacing_patch(self, record: PodRecord, replaced: Mapping[str, Any]) -> dict[str, Any]:
        """The merge patch of a JSON patch's result: its labels and annotations, and its spec
        when anything besides metadata differs from the pod as shown."""
        if not isinstance(replaced.get("metadata"), Mapping):
            raise bad_request("metadata must be an object")
        current = self.render(record)
        meta_patch: dict[str, Any] = {}
        for key in ("labels", "annotations"):
            new, old = replaced["metadata"].get(key), current["metadata"].get(key) or {}
            if isinstance(new, Mapping):  # keys the result lacks are removed
                new = {**dict.fromkeys(old), **new}
            meta_patch[key] = new
        patch: dict[str, Any] = {"metadata": meta_patch}
        if {k: v for k, v in replaced.items() if k != "metadata"} != {
            k: v for k, v in current.items() if k != "metadata"
        }:
            patch["spec"] = replaced.get("spec")
        return patch

    def replace(
        self, namespace: str, name: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """PUT: the body is the whole new pod, checked against the stored one as `patch`
        checks a patch; a stale `resourceVersion` is a 409 Conflict, as the API server's
        optimistic concurrency answers."""
        record = self._record(namespace, name)
        body = check_kind(body, "Pod")
        meta = body_meta(body, namespace)
        check_replacement(meta, "pods", name, record.manifest["metadata"]["resourceVersion"])
        old_meta = record.manifest["metadata"]
        patch: dict[str, Any] = {"metadata": {}, "spec": body.get("spec") or {}}
        for key in ("labels", "annotations"):  # replaced: keys the body lacks are removed
            new = meta.get(key) or {}
            gone = {k: None for k in old_meta.get(key) or {} if k not in new}
            patch["metadata"][key] = {**gone, **new} if (new or gone) else None
        patch.update({k: v for k, v in body.items() if k not in {"metadata", "spec"}})
        return self.patch(namespace, name, patch, dry_run=dry_run, merge=SpecMerge.REPLACE)

    def render(self, record: PodRecord) -> dict[str, Any]:
        """The pod as the API shows it; shared, never to be modified (see PodRecord)."""
        if record.rendered is None:
            record.rendered = self._render_pod(record)
        return record.rendered

    def _render_pod(self, record: PodRecord) -> dict[str, Any]:
        doc = copy.deepcopy(record.manifest)
        written = doc.get("status")
        if record.status_written and written is not None:
            return doc
        kept = foreign_conditions(written)
        self._render_status(record, doc, kept)
        if kept:  # the kubelet keeps the conditions it does not own (mergePodStatus)
            doc["status"].setdefault("conditions", []).extend(kept)
        return doc

    def _render_status(
        self, record: PodRecord, doc: dict[str, Any], others: Sequence[dict[str, Any]]
    ) -> None:
        """The kubelet's status of the pod; `others` are the conditions it does not own,
        which its readiness gates read."""
        status = record.status
        if not status.node:
            doc["status"] = _pending_status(record, doc["metadata"]["creationTimestamp"])
            return
        stamp = self._clock.rfc3339
        initialized, init_message = initialized_condition(status)
        ready, ready_message = containers_ready_condition(status)
        running = ready
        if record.stopped_at is not None:
            # Stopped for the pod's deletion: still Running in phase (kubectl: Terminating),
            # no container ready.
            names = " ".join(cs.container.name for cs in status.statuses)
            ready, ready_message = False, f"containers with unready status: [{names}]"
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
            "phase": "Running" if running else "Pending",
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
            "qosClass": qos_class(doc["spec"]),
            "containerStatuses": [
                self._container_json(status, cs, record.stopped_at) for cs in status.statuses
            ],
        }
        if not initialized:
            doc["status"]["conditions"][1]["message"] = init_message
        if not ready:
            for cond in doc["status"]["conditions"][2:4]:
                cond["message"] = ready_message
        else:
            gates = readiness_gate_messages(doc.get("spec") or {}, others)
            if gates:  # containers ready, a gate not: the pod is not Ready
                doc["status"]["conditions"][2] = {
                    **condition("Ready", ok=False, reason="ReadinessGatesNotReady"),
                    "message": gates,
                }
        if status.init_statuses:
            doc["status"]["initContainerStatuses"] = [
                self._container_json(status, cs, record.stopped_at) for cs in status.init_statuses
            ]

    def _container_json(
        self, status: PodStatus, cs: ContainerStatus, stopped_at: int | None = None
    ) -> dict[str, Any]:
        image_id = ""
        if cs.image_id:
            record = self._nodes[status.node].store.get(cs.image_id)
            image_id = record.repo_digests[0] if record and record.repo_digests else cs.image_id
        out: dict[str, Any] = {
            "name": cs.container.name,
            "image": cs.container.image,
            "imageID": image_id,
            "ready": cs.state is State.RUNNING and stopped_at is None,
            "restartCount": cs.restarts,
            "started": cs.state is State.RUNNING and stopped_at is None,
        }
        started = self._clock.rfc3339(cs.started_at) if cs.started_at is not None else None
        if cs.state is State.RUNNING and stopped_at is not None:
            # Its main process exited on the kubelet's SIGTERM, as a well-behaved one does.
            out["state"] = {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": started,
                    "finishedAt": self._clock.rfc3339(stopped_at),
                }
            }
        elif cs.state is State.WAITING:
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


def _check_identity(meta: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
    """A write names the object of its URL (the apiserver's checkName), and its UID is
    immutable (ValidateObjectMetaUpdate)."""
    for key in ("name", "namespace"):
        given = meta.get(key)
        if given not in (None, "", stored[key]):
            raise bad_request(
                f"the {key} of the object ({given}) does not match the {key} on the URL "
                f"({stored[key]})"
            )
    uid = meta.get("uid")
    if uid not in (None, "", stored["uid"]):
        raise invalid(
            "Pod",
            stored["name"],
            [
                FieldError(
                    "metadata.uid",
                    "FieldValueInvalid",
                    f'Invalid value: "{uid}": field is immutable',
                )
            ],
        )


def _pending_status(record: PodRecord, created: str) -> dict[str, Any]:
    """A pod no kubelet runs: unschedulable (the scheduler's condition), or bound to a node the
    daemon does not have (no kubelet ever reports, so no conditions at all)."""
    status: dict[str, Any] = {"phase": "Pending", "qosClass": qos_class(record.manifest["spec"])}
    if record.unschedulable is not None:
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": created,
                "reason": "Unschedulable",
                "message": record.unschedulable,
            }
        ]
    return status
