"""The generic registry: create, read, patch and delete written once for every stored kind.

As the apiserver's `registry.Store`: what differs between kinds is a `Strategy` (what a create
takes from the body, what a patched object must satisfy, the field shape); what is the same is
here: the body's kind and namespace, names and metadata checks, AlreadyExists and NotFound,
dry runs that answer as the write would and store nothing, immutable identity, one new
resourceVersion per write, saving before memory changes, and each committed change published
once on the change feed. Kinds with a life of their own (pods, the node, events, namespaces)
implement the same `Storage` protocol by hand.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from kubesim_images.clock import WallClock
from kubesim_images.daemon.changefeed import ChangeFeed
from kubesim_images.daemon.kube import ApiError
from kubesim_images.daemon.objects import (
    ObjectTable,
    body_meta,
    check_kind,
    check_patched_meta,
    check_replacement,
    drop_empty_maps,
    keep_created,
    merge_patch,
    require_name,
)
from kubesim_images.daemon.options import NO_OPTIONS, DeleteOptions, check_preconditions
from kubesim_images.daemon.podupdate import SpecMerge
from kubesim_images.daemon.validation import (
    metadata_causes,
    name_causes,
    namespace_causes,
    require_valid,
)


class Storage(Protocol):
    """What the API's generated routes call for a kind; `namespace` is "" for cluster kinds."""

    def list(self, namespace: str | None) -> list[dict[str, Any]]: ...

    def get(self, namespace: str, name: str) -> dict[str, Any]: ...

    def create(
        self, namespace: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]: ...

    def patch(
        self,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        dry_run: bool = False,
        merge: SpecMerge = SpecMerge.JSON,
    ) -> dict[str, Any]: ...

    def replace(
        self, namespace: str, name: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]: ...

    async def delete(
        self,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        options: DeleteOptions = NO_OPTIONS,
    ) -> dict[str, Any]: ...


def not_allowed(verb: str) -> ApiError:
    """Routes exist only for a kind's declared verbs; reaching this is a table mistake."""
    return ApiError(405, "MethodNotAllowed", f"the server does not allow {verb} on this resource")


class ReadOnly:
    """The write half of `Storage` for kinds only the daemon itself writes."""

    def create(
        self, namespace: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        del namespace, body, dry_run
        raise not_allowed("create")

    def patch(
        self,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        dry_run: bool = False,
        merge: SpecMerge = SpecMerge.JSON,
    ) -> dict[str, Any]:
        del namespace, name, patch, dry_run, merge
        raise not_allowed("patch")

    def replace(
        self, namespace: str, name: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        del namespace, name, body, dry_run
        raise not_allowed("update")

    async def delete(
        self,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        options: DeleteOptions = NO_OPTIONS,
    ) -> dict[str, Any]:
        del namespace, name, dry_run, options
        raise not_allowed("delete")


class Strategy(Protocol):
    """A stored kind's own rules (the apiserver's RESTCreateStrategy/RESTUpdateStrategy)."""

    def prepare_create(self, body: Mapping[str, Any], doc: dict[str, Any]) -> None:
        """Fill `doc` (its metadata already set) from the body, and validate it."""

    def shape(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A patched object with its kind's fields only, each of its Go type."""
        ...

    def prepare_update(
        self, doc: dict[str, Any], before: Mapping[str, Any], patch: Mapping[str, Any]
    ) -> None:
        """Validate (and complete) the patched object against the stored one."""


class ObjectStorage:
    """`Storage` for a kind kept in an `ObjectTable`, its rules given by a `Strategy`."""

    def __init__(
        self,
        table: ObjectTable,
        strategy: Strategy,
        feed: ChangeFeed,
        clock: WallClock,
        *,
        api_version: str = "v1",
    ) -> None:
        self.table = table
        self._strategy = strategy
        self._feed = feed
        self._clock = clock
        self._api_version = api_version

    @property
    def kind(self) -> str:
        return self.table.kind

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        return [
            doc
            for (ns, _), doc in sorted(self.table.items())
            if namespace is None or ns == namespace
        ]

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return self.table.require(namespace, name)

    def create(
        self, namespace: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        body = check_kind(body, self.kind, self._api_version)
        meta = body_meta(body, namespace)
        name = require_name(meta, self.kind)
        require_valid(
            self.kind,
            name,
            name_causes(name) + namespace_causes(namespace) + metadata_causes(meta),
        )
        self.table.require_absent(namespace, name)
        new_meta = {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())}
        if not dry_run:  # a dry run consumes no resourceVersion; the apiserver shows none
            new_meta["resourceVersion"] = str(self._feed.next_version())
        new_meta["creationTimestamp"] = self._clock.rfc3339(self._clock.now_ns())
        new_meta.update({k: v for k, v in meta.items() if k in {"labels", "annotations"}})
        doc: dict[str, Any] = {
            "kind": self.kind,
            "apiVersion": self._api_version,
            "metadata": new_meta,
        }
        self._strategy.prepare_create(body, doc)
        if not dry_run:
            self.table.put(doc)
        return doc

    def patch(
        self,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        dry_run: bool = False,
        merge: SpecMerge = SpecMerge.JSON,
    ) -> dict[str, Any]:
        del merge  # stored kinds have no lists merged by key
        before = self.get(namespace, name)
        if "__replace__" in patch:  # a JSON patch: the whole object as it would become
            patch = patch["__replace__"]
            merged = copy.deepcopy(dict(patch))
        else:
            merged = merge_patch(before, patch)
        doc = self._strategy.shape(keep_created(merged, before))
        check_patched_meta(doc, before, self.table.resource)
        drop_empty_maps(doc["metadata"])
        require_valid(self.kind, name, metadata_causes(doc["metadata"]))
        self._strategy.prepare_update(doc, before, patch)
        if doc == before:  # a no-op keeps its resourceVersion and sends no event
            return before
        if not dry_run:
            doc["metadata"]["resourceVersion"] = str(self._feed.next_version())
            self.table.put(doc)
        return doc

    def replace(
        self, namespace: str, name: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """PUT: the body is the whole new object; identity and creation are kept from the
        stored one, a stale `resourceVersion` is a 409 Conflict."""
        body = check_kind(body, self.kind, self._api_version)
        meta = body_meta(body, namespace)
        before = self.get(namespace, name)
        old_meta = before["metadata"]
        check_replacement(meta, self.table.resource, name, old_meta["resourceVersion"])
        identity = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        new_meta = {k: old_meta[k] for k in identity if k in old_meta}
        new_meta.update({k: meta[k] for k in ("labels", "annotations") if meta.get(k)})
        replaced = {
            **body,
            "kind": self.kind,
            "apiVersion": self._api_version,
            "metadata": new_meta,
        }
        doc = self._strategy.shape(replaced)
        require_valid(self.kind, name, metadata_causes(doc["metadata"]))
        self._strategy.prepare_update(doc, before, body)
        if doc == before:  # a no-op keeps its resourceVersion and sends no event
            return before
        if not dry_run:
            doc["metadata"]["resourceVersion"] = str(self._feed.next_version())
            self.table.put(doc)
        return doc

    async def delete(
        self,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        options: DeleteOptions = NO_OPTIONS,
    ) -> dict[str, Any]:
        check_preconditions(self.get(namespace, name), options, self.table.resource)
        if dry_run:
            return self.get(namespace, name)
        return self.table.remove(namespace, name)

    def write_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """An in-process controller's status write (the `/status` subresource's effect): the
        object's next resourceVersion, saved, published once as MODIFIED."""
        before = self.get(namespace, name)
        meta = {**before["metadata"], "resourceVersion": str(self._feed.next_version())}
        doc = {**before, "metadata": meta, "status": dict(status)}
        self.table.put(doc)
        return doc
