"""A pod's compute resources as the apiserver treats them: the requests' defaults and the QoS
class (quantities.py checks the quantities themselves, a request above its limit included).

`SetDefaults_Pod` copies each limit a container gives without a request into its requests (a
pod only: a Deployment's template is stored as written). At creation the pod strategy sets
`status.qosClass` (`qos.GetPodQOS`) from the requests and limits of every container, init
containers included, counting only cpu and memory and only quantities above zero: none at all
is BestEffort; cpu and memory limits on every container, with the pod's summed requests equal
to its summed limits, Guaranteed; anything else Burstable. A pod's resources cannot change
afterwards (in-place resize is off in v1.32), so the class follows from the stored spec alone.

Quantities here have already parsed (`quantities.check_quantities` refuses the others first);
one that still does not is skipped rather than failing a render.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from kubesim_images.daemon.quantities import QuantityError, json_text, quantity_sum, quantity_value

BEST_EFFORT = "BestEffort"
BURSTABLE = "Burstable"
GUARANTEED = "Guaranteed"
_QOS_RESOURCES = ("cpu", "memory")


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Each container of the spec, app containers first as GetPodQOS."""
    for key in ("containers", "initContainers"):
        found = spec.get(key)
        for container in found if isinstance(found, list) else []:
            if isinstance(container, Mapping):
                yield container


def _resource_map(container: Mapping[str, Any], part: str) -> Mapping[str, Any]:
    resources = container.get("resources")
    found = resources.get(part) if isinstance(resources, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def _value(raw: Any) -> Decimal | None:
    if raw is None:
        return None
    try:
        return quantity_value(json_text(raw))
    except QuantityError:
        return None


def default_requests(spec: dict[str, Any]) -> None:
    """SetDefaults_Pod: a limit without a request of the same resource becomes its request."""
    for container in _containers(spec):
        resources = container.get("resources")
        limits = resources.get("limits") if isinstance(resources, dict) else None
        if not isinstance(resources, dict) or not isinstance(limits, Mapping) or not limits:
            continue
        requests = resources.get("requests")
        if not isinstance(requests, dict):
            requests = resources["requests"] = {}
        for name, limit in limits.items():
            if limit is not None and requests.get(name) is None:
                requests[name] = limit


def _add(total: dict[str, Decimal], name: str, raw: Any) -> bool:
    """Add a positive cpu or memory quantity to `total`; whether it counted."""
    if name not in _QOS_RESOURCES:
        return False
    value = _value(raw)
    if value is None or value <= 0:
        return False
    total[name] = quantity_sum(total.get(name, Decimal(0)), value)
    return True


def qos_class(spec: Mapping[str, Any]) -> str:
    """GetPodQOS of a pod's (defaulted) spec."""
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for container in _containers(spec):
        # As defaulted, should the spec predate default_requests (a pod restored from state).
        given = {k: v for k, v in _resource_map(container, "limits").items() if v is not None}
        defaulted = {**given}
        defaulted.update(
            (k, v) for k, v in _resource_map(container, "requests").items() if v is not None
        )
        for name, raw in defaulted.items():
            _add(requests, name, raw)
        limited = {name for name, raw in given.items() if _add(limits, name, raw)}
        if not limited.issuperset(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return BEST_EFFORT
    matching = all(limits.get(name) == value for name, value in requests.items())
    if guaranteed and matching and len(requests) == len(limits):
        return GUARANTEED
    return BURSTABLE
