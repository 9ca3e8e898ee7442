"""Resource quantities in a pod (container requests and limits, `spec.overhead`) or in a
Deployment's or ReplicaSet's pod template, checked as the API server checks them.

A quantity the decoder cannot parse (`cpu: "abc"`) is refused 400 before anything is stored,
with apimachinery's `ParseQuantity` texts: stored, it would break every client that decodes the
pod (`kubectl describe node` sums the node's pod requests). One that parses but is negative is
refused 422 as `ValidateResourceQuantityValue` does, and so is a container's request above its
limit of the same resource (`ValidateResourceRequirements`).
"""

from __future__ import annotations

import decimal
import json
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from kubesim_images.daemon.kube import bad_request
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


def _request_limit_causes(spec: Mapping[str, Any], prefix: str) -> list[FieldError]:
    """A request above the container's limit of the same resource, with the apiserver's text
    (it names the requests map, not the key). Every quantity has parsed by now."""
    causes = []
    for path, resources in _resources(spec):
        requests, limits = resources.get("requests"), resources.get("limits")
        if not isinstance(requests, Mapping) or not isinstance(limits, Mapping):
            continue
        for name, raw in requests.items():
            limit = limits.get(name)
            if raw is None or limit is None:
                continue
            request_text, limit_text = json_text(raw), json_text(limit)
            if quantity_value(request_text) > quantity_value(limit_text):
                causes.append(
                    FieldError(
                        f"{prefix}{path}.requests",
                        "FieldValueInvalid",
                        f'Invalid value: "{request_text}": must be less than or equal to '
                        f"{name} limit of {limit_text}",
                    )
                )
    return causes
