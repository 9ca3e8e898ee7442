"""Namespaces: the objects, the apiserver's NamespaceLifecycle admission, and two controllers.

A namespace is an object of its own (uid, creationTimestamp, resourceVersion), saved in the
state store. Around it, what a cluster does with namespaces:

- admission (the apiserver's NamespaceLifecycle plugin): a create in a namespace that does not
  exist is 404 `namespaces "x" not found`, in one being terminated 403 Forbidden; default,
  kube-system and kube-public cannot be deleted;
- the system namespaces controller: kube-system, kube-public and kube-node-lease exist, one
  deleted (only kube-node-lease can be) is created again once it is gone;
- the serviceaccount controller: every active namespace has its `default` ServiceAccount,
  recreated when deleted;
- the namespace controller: `DELETE` only marks a namespace Terminating (deletionTimestamp,
  phase, the `kubernetes` finalizer kept); a task then deletes its content (pods gracefully)
  and, once nothing is left, removes the finalizer and the namespace. A namespace still
  Terminating when the daemon stops resumes its deletion at the next start.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from kubesim_images.clock import WallClock
from kubesim_images.daemon.changefeed import DELETED, Change, ChangeFeed
from kubesim_images.daemon.kube import ApiError, bad_request, invalid, not_found
from kubesim_images.daemon.objects import ObjectTable, check_kind, check_string_maps
from kubesim_images.daemon.options import NO_OPTIONS, DeleteOptions, check_preconditions
from kubesim_images.daemon.podupdate import SpecMerge
from kubesim_images.daemon.storage import ObjectStorage, Storage
from kubesim_images.daemon.validation import metadata_causes, require_valid
from kubesim_images.logging import get_logger
from kubesim_images.pod import DNS1123_LABEL, FieldError, label_invalid
from kubesim_images.state import StateStore
from kubesim_images.tasks import create_guarded_task, stop_task

_log = get_logger()

# The namespaces a cluster has from the start (the system namespaces controller keeps them), and
# those the apiserver's NamespaceLifecycle admission never lets go.
BUILT_IN = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
IMMORTAL = frozenset({"default", "kube-system", "kube-public"})
FINALIZER = "kubernetes"
NAME_LABEL = "kubernetes.io/metadata.name"
ACTIVE, TERMINATING = "Active", "Terminating"

# Deletes the namespace's content and returns once nothing of it is left.
Purge = Callable[[str], Awaitable[None]]


class NamespaceStrategy:
    """What an update may change: labels and annotations. The spec (finalizers) and status are
    the system's (as the apiserver's namespace strategy keeps them), and the name label stays."""

    def prepare_create(self, body: Mapping[str, Any], doc: dict[str, Any]) -> None:
        del body, doc  # namespaces are created by `Namespaces.create`

    def shape(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if k in {"apiVersion", "kind", "metadata"}}

    def prepare_update(
        self, doc: dict[str, Any], before: Mapping[str, Any], patch: Mapping[str, Any]
    ) -> None:
        del patch
        meta = doc["metadata"]
        old = before["metadata"]
        for key in ("deletionTimestamp", "resourceVersion"):
            if key in old:
                meta[key] = old[key]
        meta["labels"] = {**(meta.get("labels") or {}), NAME_LABEL: old["name"]}
        doc["spec"] = before["spec"]
        doc["status"] = before["status"]


class Namespaces:
    """`Storage` for namespaces, their admission, and the controllers that act on them."""

    def __init__(
        self,
        state: StateStore,
        feed: ChangeFeed,
        clock: WallClock,
        service_accounts: Storage,
        purge: Purge,
    ) -> None:
        self._state = state
        self._feed = feed
        self._clock = clock
        self._service_accounts = service_accounts
        self.table = ObjectTable("Namespace", "namespaces", state, feed)
        self._updates = ObjectStorage(self.table, NamespaceStrategy(), feed, clock)
        self._purge = purge
        self._deleting: dict[str, asyncio.Task[None]] = {}
        self._pending_accounts: set[str] = set()
        self._unsubscribe = feed.subscribe("ServiceAccount", self._account_changed)

    # -- restore and stop --------------------------------------------------------------------
    def restore(self, created_epoch: float, in_use: Iterable[str]) -> None:
        """Load the saved namespaces. Those a daemon of an earlier version only named (a saved
        list, or objects in them) and the built-in ones become objects created when the node
        was; every active one gets its default account, a terminating one resumes its
        deletion."""
        self.table.restore()
        legacy = set(json.loads(self._state.get_meta("namespaces", "[]")))
        for name in sorted((BUILT_IN | legacy | set(in_use)) - {n for _, n in self.table}):
            self.table.put(self._new(name, {}, created_epoch=created_epoch))
        for doc in self.list(None):
            name = doc["metadata"]["name"]
            if doc["status"]["phase"] == TERMINATING:
                self._start_deleting(name)
            else:
                self._ensure_account(name)

    async def stop(self) -> None:
        self._unsubscribe()
        for task in list(self._deleting.values()):
            await stop_task(task)
        self._deleting.clear()

    # -- admission ---------------------------------------------------------------------------
    def admit_create(self, resource: str, namespace: str, name: str) -> None:
        """NamespaceLifecycle for a create in `namespace`: it must exist and not be ending."""
        doc = self.table.get(("", namespace))
        if doc is None:
            raise not_found("namespaces", namespace)
        if doc["status"]["phase"] == TERMINATING:
            raise ApiError(
                403,
                "Forbidden",
                f'{resource} "{name}" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated",
                details={
                    "name": name,
                    "kind": resource,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    def active(self, namespace: str) -> bool:
        doc = self.table.get(("", namespace))
        return doc is not None and doc["status"]["phase"] == ACTIVE

    # -- Storage -----------------------------------------------------------------------------
    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        del namespace
        return [doc for _, doc in sorted(self.table.items())]

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        del namespace
        return self.table.require("", name)

    def create(
        self, namespace: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        del namespace
        body = check_kind(body, "Namespace")
        meta = body.get("metadata") or {}
        if not isinstance(meta, Mapping):
            raise bad_request("metadata must be an object")
        check_string_maps(meta)
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("metadata.name is required")
        if len(name) > 63 or not DNS1123_LABEL.fullmatch(name):
            raise invalid(
                "Namespace",
                name,
                [FieldError("metadata.name", "FieldValueInvalid", label_invalid(name))],
            )
        require_valid("Namespace", name, metadata_causes(meta))
        self.table.require_absent("", name)
        doc = self._new(name, meta, dry_run=dry_run)
        if dry_run:
            return doc
        self.table.put(doc)
        _log.info("namespace_created", namespace=name)
        self._ensure_account(name)
        return doc

    def _new(
        self,
        name: str,
        meta: Mapping[str, Any],
        *,
        created_epoch: float | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        created = (
            self._clock.now_ns() if created_epoch is None else self._clock.loop_time(created_epoch)
        )
        new_meta: dict[str, Any] = {"name": name, "uid": str(uuid.uuid4())}
        if not dry_run:
            new_meta["resourceVersion"] = str(self._feed.next_version())
        new_meta["creationTimestamp"] = self._clock.rfc3339(created)
        new_meta["labels"] = {**(meta.get("labels") or {}), NAME_LABEL: name}
        if meta.get("annotations"):
            new_meta["annotations"] = dict(meta["annotations"])
        return {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": new_meta,
            "spec": {"finalizers": [FINALIZER]},
            "status": {"phase": ACTIVE},
        }

    def patch(
        self,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        dry_run: bool = False,
        merge: SpecMerge = SpecMerge.JSON,
    ) -> dict[str, Any]:
        del namespace
        return self._updates.patch("", name, patch, dry_run=dry_run, merge=merge)

    def replace(
        self, namespace: str, name: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        del namespace
        return self._updates.replace("", name, body, dry_run=dry_run)

    async def delete(
        self,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        options: DeleteOptions = NO_OPTIONS,
    ) -> dict[str, Any]:
        """Mark the namespace Terminating; the namespace controller does the rest."""
        del namespace
        if name in IMMORTAL:
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                details={"name": name, "kind": "namespaces"},
            )
        before = self.table.require("", name)
        check_preconditions(before, options, "namespaces")
        if before["status"]["phase"] == TERMINATING:
            return before  # its deletion is under way: answered as it is, as the apiserver does
        stamp = self._clock.rfc3339(self._clock.now_ns())
        meta = {**before["metadata"], "deletionTimestamp": stamp}
        doc = {**before, "metadata": meta, "status": {"phase": TERMINATING}}
        if dry_run:
            return doc
        meta["resourceVersion"] = str(self._feed.next_version())
        self.table.put(doc)
        _log.info("namespace_terminating", namespace=name)
        self._start_deleting(name)
        return doc

    # -- the namespace controller --------------------------------------------------------------
    def _start_deleting(self, name: str) -> None:
        if name not in self._deleting:
            self._deleting[name] = create_guarded_task(
                self._finish_deleting(name), name=f"namespace-delete-{name}", namespace=name
            )

    async def _finish_deleting(self, name: str) -> None:
        try:
            await self._purge(name)
            doc = self.table.require("", name)
            meta = {**doc["metadata"], "resourceVersion": str(self._feed.next_version())}
            self.table.put({**doc, "metadata": meta, "spec": {"finalizers": []}})
            self.table.remove("", name)
            _log.info("namespace_deleted", namespace=name)
            if name in BUILT_IN:
                # The system namespaces controller's next pass: the namespace again, anew.
                self.create("", {"metadata": {"name": name}})
        finally:
            self._deleting.pop(name, None)

    # -- the serviceaccount controller ---------------------------------------------------------
    def _ensure_account(self, namespace: str) -> None:
        self._pending_accounts.discard(namespace)
        if not self.active(namespace):
            return
        try:
            self._service_accounts.get(namespace, "default")
        except ApiError:
            self._service_accounts.create(namespace, {"metadata": {"name": "default"}})

    def _account_changed(self, change: Change) -> None:
        meta = change.object["metadata"]
        if change.type != DELETED or meta["name"] != "default":
            return
        namespace = meta["namespace"]
        if namespace not in self._pending_accounts and self.active(namespace):
            # After this change has reached every watcher, never inside its publication.
            self._pending_accounts.add(namespace)
            asyncio.get_running_loop().call_soon(self._ensure_account, namespace)
