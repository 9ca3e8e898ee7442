"""Resource quantities in a pod (container requests and limits, `spec.overhead`) or in a
Deployment's or ReplicaSet's pod template, checked as the API server checks them.

A quantity the decoder cannot parse (`cpu: "abc"`) is refused 400 before anything is stored,
with apimachinery's `ParseQuantity` texts: stored, it would break every client that decodes the
pod (`kubectl describe node` sums the node's pod requests). One that parses but is negative is
refused 422 as `ValidateResourceQuantityValue` does, and so are what `ValidateResourceRequirements`
refuses: a resource name no container may use (`memroy`), a request above its limit, and an
extended resource (`nvidia.com/gpu`) requested without a limit or with another one.
"""

from __future__ import annotations

import decimal
import json
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from kubesim_images.daemon.kube import bad_request
from kubesim_images.daemon.validation import qualified_name_errors
from kubesim_images.pod import FieldError

FORMAT_WRONG = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
NUMERIC = "unable to parse numeric part of quantity"
SUFFIX = "unable to parse quantity's suffix"
NEGATIVE = "must be greater than or equal to 0"  # apimachinery's IsNegativeErrorMsg

_SPLIT = re.compile(r"([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)")
_SUFFIXES = frozenset(
    {"", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
)
_EXPONENT = re.compile(r"[eE][-+]?[0-9]+")
_SCALE = {
    "": 0,
    "n": -9,
    "u": -6,
    "m": -3,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
# Exact for any quantity a client writes; one too large for it (`1e999999999`) is Infinity,
# which still compares as the apiserver's huge value does.
_EXACT = decimal.Context(prec=60, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[])


class QuantityError(ValueError):
    """A text `resource.ParseQuantity` refuses; the message is apimachinery's."""


def _parts(text: str) -> tuple[Decimal, str]:
    match = _SPLIT.fullmatch(text)
    if match is None:
        raise QuantityError(FORMAT_WRONG)
    number, suffix = match.groups()
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise QuantityError(NUMERIC) from None
    if suffix not in _SUFFIXES and not _EXPONENT.fullmatch(suffix):
        raise QuantityError(SUFFIX)
    return value, suffix


def parse_quantity(text: str) -> Decimal:
    """The number part of a quantity (`500m` gives 500), or QuantityError with apimachinery's
    text: its sign is the quantity's."""
    return _parts(text)[0]


def quantity_value(text: str) -> Decimal:
    """The number a quantity stands for (`500m` is 0.5, `1Ki` 1024), to compare and add as
    `resource.Quantity` does; QuantityError as parse_quantity."""
    number, suffix = _parts(text)
    if suffix in _BINARY:
        return _EXACT.multiply(number, Decimal(1024) ** _BINARY[suffix])
    exponent = _SCALE[suffix] if suffix in _SCALE else int(suffix[1:])
    return _EXACT.scaleb(number, exponent)


def quantity_sum(a: Decimal, b: Decimal) -> Decimal:
    """`a + b` as Quantity.Add: exact, and Infinity rather than an error past any exponent."""
    return _EXACT.add(a, b)


def json_text(value: Any) -> str:
    """The text Quantity.UnmarshalJSON parses: a string's contents, any other JSON as written."""
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value, separators=(",", ":"))


def _resources(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in ("initContainers", "containers"):
        containers = spec.get(key)
        for i, container in enumerate(containers if isinstance(containers, list) else []):
            resources = container.get("resources") if isinstance(container, Mapping) else None
            if isinstance(resources, Mapping):
                yield f"spec.{key}[{i}].resources", resources


def _quantity_maps(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for path, resources in _resources(spec):
        for part in ("requests", "limits"):
            found = resources.get(part)
            if isinstance(found, Mapping):
                yield f"{path}.{part}", found
    overhead = spec.get("overhead")
    if isinstance(overhead, Mapping):
        yield "spec.overhead", overhead


def check_pod_quantities(body: Mapping[str, Any]) -> list[FieldError]:
    """Raise the decoder's 400 for a quantity that does not parse; return the 422 causes of
    ones that parse but are negative, or are requests above their limits."""
    return check_quantities(body.get("spec"), "Pod")


def check_template_quantities(kind: str, spec: Any) -> list[FieldError]:
    """The same for the pod template of a Deployment or ReplicaSet (`spec`: the workload's):
    the decoder names the workload's kind, and the causes' fields are under `spec.template`."""
    template = spec.get("template") if isinstance(spec, Mapping) else None
    pod_spec = template.get("spec") if isinstance(template, Mapping) else None
    return check_quantities(pod_spec, kind, "spec.template.")


def check_quantities(spec: Any, kind: str, prefix: str = "") -> list[FieldError]:
    if not isinstance(spec, Mapping):
        return []
    causes: list[FieldError] = []
    for path, quantities in _quantity_maps(spec):
        for name, raw in quantities.items():
            if raw is None:
                continue
            text = json_text(raw)
            try:
                value = parse_quantity(text)
            except QuantityError as exc:
                raise bad_request(
                    f'{kind} in version "v1" cannot be handled as a {kind}: {exc}'
                ) from None
            if value < 0:
                causes.append(
                    FieldError(
                        f"{prefix}{path}[{name}]",
                        "FieldValueInvalid",
                        f'Invalid value: "{text}": {NEGATIVE}',
                    )
                )
    return causes + _request_limit_causes(spec, prefix)


# standardResources (pkg/apis/core/helper): names a ResourceList may use unqualified; of them
# only cpu, memory, ephemeral-storage and hugepages-<size> belong to a container.
_STANDARD = frozenset(
    {
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "requests.storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "storage",
        "services.nodeports",
        "services.loadbalancers",
    }
)
_CONTAINER = frozenset({"cpu", "memory", "ephemeral-storage"})


def _name_causes(field: str, name: str) -> list[FieldError]:
    """validateContainerResourceName: a qualified name; unqualified, a standard one, and one
    a container may use (`memroy` fails both)."""

    def invalid(message: str) -> FieldError:
        return FieldError(field, "FieldValueInvalid", f'Invalid value: "{name}": {message}')

    syntax = qualified_name_errors(name)
    if syntax:
        return [invalid(message) for message in syntax]
    if "/" in name:
        return []
    causes = []
    huge = name.startswith("hugepages-")
    if name not in _STANDARD and not huge:
        causes.append(invalid("must be a standard resource type or fully qualified"))
    if name not in _CONTAINER and not huge:
        causes.append(invalid("must be a standard resource for containers"))
    return causes


def _overcommit_allowed(name: str) -> bool:
    """IsOvercommitAllowed: native resources (no domain, or a kubernetes.io one) but huge
    pages; extended ones (`nvidia.com/gpu`) need a limit, and a request equal to it."""
    native = "/" not in name or "kubernetes.io/" in name
    return native and not name.startswith("hugepages-")


def _request_limit_causes(spec: Mapping[str, Any], prefix: str) -> list[FieldError]:
    """Each container's resource names, and its requests against its limits, as
    ValidateResourceRequirements checks them with its texts (a request's relation to its limit
    names the requests map, not the key). Every quantity has parsed by now."""
    causes = []
    for path, resources in _resources(spec):
        where = f"{prefix}{path}"
        requests, limits = resources.get("requests"), resources.get("limits")
        requests = requests if isinstance(requests, Mapping) else {}
        limits = limits if isinstance(limits, Mapping) else {}
        for part, given in (("limits", limits), ("requests", requests)):
            for name in given:
                causes += _name_causes(f"{where}.{part}[{name}]", str(name))
        for name, raw in requests.items():
            limit = limits.get(name)
            if raw is None:
                continue
            if limit is None:
                if not _overcommit_allowed(name):
                    causes.append(
                        FieldError(
                            f"{where}.limits",
                            "FieldValueRequired",
                            "Required value: Limit must be set for non overcommitable resources",
                        )
                    )
                continue
            request_text, limit_text = json_text(raw), json_text(limit)
            request, limited = quantity_value(request_text), quantity_value(limit_text)
            if request != limited and not _overcommit_allowed(name):
                relation = "must be equal to"
            elif request > limited:
                relation = "must be less than or equal to"
            else:
                continue
            causes.append(
                FieldError(
                    f"{where}.requests",
                    "FieldValueInvalid",
                    f'Invalid value: "{request_text}": {relation} {name} limit of {limit_text}',
                )
            )
    return causes
