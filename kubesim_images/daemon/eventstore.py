"""Events as the API serves them: the kubelet's events, aggregated as client-go's recorder does.

An event identical to an earlier one (same object, field path, type, reason and message) bumps
that event's `count` and `lastTimestamp` instead of adding a new one, which is what makes
`kubectl describe` print `Back-off pulling image "x" (x12 over 3m)`. Events are written through
to the state store and capped, oldest first, as the API server's TTL would drop them.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from kubesim_images.clock import WallClock
from kubesim_images.daemon.kube import not_found
from kubesim_images.daemon.storage import ReadOnly
from kubesim_images.events import Event
from kubesim_images.state import StateStore

MAX_EVENTS = 5000

_Key = tuple[str, str, str, str, str, str]


class EventStore(ReadOnly):
    """`Storage` for events: the kubelet writes them (`emit`), the API reads them."""

    def __init__(
        self,
        state: StateStore,
        clock: WallClock,
        next_version: Callable[[], int],
        on_change: Callable[[str, dict[str, Any]], None] = lambda _c, _d: None,
    ) -> None:
        self._state = state
        self._clock = clock
        self._next_version = next_version
        # (ADDED | MODIFIED | DELETED, doc) for watches. A stored event is never modified in
        # place (a bump is a new dict), so a watch may hold and share the doc it was given.
        self._on_change = on_change
        self._events: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._index: dict[_Key, str] = {}
        self._seq = 0

    @staticmethod
    def _key(doc: dict[str, Any]) -> _Key:
        obj = doc["involvedObject"]
        return (
            obj.get("namespace", ""),
            obj.get("uid", ""),
            obj.get("fieldPath", ""),
            doc["type"],
            doc["reason"],
            doc["message"],
        )

    def restore(self) -> None:
        for doc in self._state.events():
            self._seq += 1
            name = doc["metadata"]["name"]
            self._events[name] = doc
            self._index[self._key(doc)] = name

    def emit(self, event: Event) -> None:
        # As `_key` reads it back from the stored involvedObject.
        namespace, uid = ("", event.node) if event.about_node else (event.namespace, event.pod_uid)
        key = (
            namespace,
            uid,
            event.field_path,
            event.type.value,
            event.reason.value,
            event.message,
        )
        self._put(
            key,
            event.namespace,
            event.node if event.about_node else event.pod,
            event.t,
            involved=_involved(event),
            reason=event.reason.value,
            message=event.message,
            # The kubelet reports from its node; the scheduler's events have no host.
            source=(
                {"component": event.source, "host": event.node}
                if event.node
                else {"component": event.source}
            ),
            kind=event.type.value,
            instance=event.node or event.source,
        )

    def record(
        self, involved: dict[str, Any], kind: str, reason: str, message: str, component: str
    ) -> None:
        """An event about an API object from a controller (`ScalingReplicaSet`, ...), stored,
        aggregated and watched as the kubelet's are."""
        namespace = involved["namespace"]
        self._put(
            (namespace, involved["uid"], "", kind, reason, message),
            namespace,
            involved["name"],
            self._clock.now_ns(),
            involved=involved,
            reason=reason,
            message=message,
            source={"component": component},
            kind=kind,
            instance="",
        )

    def _put(
        self,
        key: _Key,
        namespace: str,
        stem: str,
        t: int,
        *,
        involved: dict[str, Any],
        reason: str,
        message: str,
        source: dict[str, str],
        kind: str,
        instance: str,
    ) -> None:
        """An event at loop time `t`: a repeat of the one stored under `key` (count and last
        time bumped, as the kubelet's recorder aggregates), or a new `<stem>.<hex ns>`."""
        stamp = self._clock.rfc3339(t)
        self._seq += 1
        name = self._index.get(key)
        change = "ADDED"
        if name is not None and name in self._events:
            old = self._events.pop(name)
            meta = {**old["metadata"], "resourceVersion": str(self._next_version())}
            doc = {**old, "metadata": meta, "count": old["count"] + 1, "lastTimestamp": stamp}
            change = "MODIFIED"
        else:
            nanos = int(self._clock.to_datetime(t).timestamp() * 1e9) + self._seq
            name = f"{stem}.{nanos:x}"
            doc = {
                "kind": "Event",
                "apiVersion": "v1",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": str(self._next_version()),
                    "creationTimestamp": stamp,
                },
                "involvedObject": involved,
                "reason": reason,
                "message": message,
                "source": source,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
                "type": kind,
                "eventTime": None,
                "reportingComponent": source["component"],
                "reportingInstance": instance,
            }
            self._index[key] = name
        self._store(name, namespace, doc, change)

    def _store(self, name: str, namespace: str, doc: dict[str, Any], change: str) -> None:
        self._events[name] = doc
        self._state.put_event(name, namespace, self._seq, doc)
        self._on_change(change, doc)
        while len(self._events) > MAX_EVENTS:
            old_name, evicted = self._events.popitem(last=False)
            self._index.pop(self._key(evicted), None)
            self._state.delete_event(old_name)
            meta = {**evicted["metadata"], "resourceVersion": str(self._next_version())}
            self._on_change("DELETED", {**evicted, "metadata": meta})

    def remove_namespace(self, namespace: str) -> None:
        """Delete the events of a namespace being deleted, each a DELETED change."""
        for name, doc in list(self._events.items()):
            if doc["metadata"]["namespace"] != namespace:
                continue
            del self._events[name]
            self._index.pop(self._key(doc), None)
            self._state.delete_event(name)
            meta = {**doc["metadata"], "resourceVersion": str(self._next_version())}
            self._on_change("DELETED", {**doc, "metadata": meta})

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        docs = self._events.values()
        if namespace is None:
            return list(docs)
        return [d for d in docs if d["metadata"]["namespace"] == namespace]

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        doc = self._events.get(name)
        if doc is None or doc["metadata"]["namespace"] != namespace:
            raise not_found("events", name)
        return doc

    def __len__(self) -> int:
        return len(self._events)


def _involved(event: Event) -> dict[str, Any]:
    if event.about_node:
        # The kubelet's nodeRef: the node's name as its UID, no namespace; `kubectl describe
        # node` looks for events by that UID as well as the Node object's own.
        return {"kind": "Node", "name": event.node, "uid": event.node, "apiVersion": "v1"}
    return {
        "kind": "Pod",
        "namespace": event.namespace,
        "name": event.pod,
        "uid": event.pod_uid,
        "apiVersion": "v1",
        # A container's events name it; the scheduler's are about the whole pod.
        **({"fieldPath": event.field_path} if event.field_path else {}),
    }
