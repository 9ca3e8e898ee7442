"""Events as the kubelet records them: who (pod, container field path; or the node itself),
what (type, reason, message) and when (loop time, integer nanoseconds). Sinks decide where they
go: a list for scenarios, the daemon's store for the API. Recording is on the hot path of every
pull, so an event is an immutable named tuple (made in a fifth of the time of a frozen
dataclass of as many fields, which sets each through `object.__setattr__`) and emitting is a
method call.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from kubesim_images.pod import Container, Pod
from kubesim_images.reasons import EventType, Reason


class Event(NamedTuple):
    t: int  # loop time, ns
    node: str
    namespace: str
    pod: str
    pod_uid: str
    field_path: str  # "spec.containers{app}", as involvedObject.fieldPath
    type: EventType
    reason: Reason
    message: str
    kind: str = "Pod"  # the involved object's kind: "Pod", or "Node" for node events
    source: str = "kubelet"  # the reporting component: "default-scheduler" for placement

    @property
    def about_node(self) -> bool:
        return self.kind == "Node"


def node_event(t: int, node: str, kind: EventType, reason: Reason, message: str) -> Event:
    """An event about the node (image GC, disk), recorded in `default` as the kubelet does."""
    return Event(
        t=t,
        node=node,
        namespace="default",
        pod="",
        pod_uid="",
        field_path="",
        type=kind,
        reason=reason,
        message=message,
        kind="Node",
    )


def scheduler_event(t: int, pod: Pod, message: str) -> Event:
    """The scheduler's Warning `FailedScheduling` about a pod no node can take (no node yet)."""
    return Event(
        t,
        "",
        pod.namespace,
        pod.name,
        pod.uid,
        "",
        EventType.WARNING,
        Reason.FAILED_SCHEDULING,
        message,
        source="default-scheduler",
    )


def container_event(
    t: int,
    node: str,
    pod: Pod,
    container: Container,
    kind: EventType,
    reason: Reason,
    message: str,
) -> Event:
    """An event about one container, with the field path `kubectl describe` groups by."""
    return Event(
        t, node, pod.namespace, pod.name, pod.uid, container.field_path, kind, reason, message
    )


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


class EventLog:
    """Keeps every event in order and counts them by reason."""

    __slots__ = (
        "counts",
        "events",
    )

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.counts: dict[Reason, int] = dict.fromkeys(Reason, 0)

    def emit(self, event: Event) -> None:
        self.events.append(event)
        self.counts[event.reason] += 1


class FanOut:
    """Delivers each event to several sinks (a log and a metrics counter, say)."""

    def __init__(self, *sinks: EventSink) -> None:
        self._sinks = sinks

    def emit(self, event: Event) -> None:
        for sink in self._sinks:
            sink.emit(event)
