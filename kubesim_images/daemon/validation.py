"""The API server's object-metadata rules, with its texts: names, namespaces, labels, annotations.

Every name and namespace that reaches storage passes here (k8s.io/apimachinery's
`ValidateObjectMeta` and `util/validation`): namespaces are RFC 1123 labels, secret and service
account names RFC 1123 subdomains, label keys qualified names with values of at most 63
characters, annotations at most 256 KiB in all. Limits keep every request's work bounded: a
pod's label map cannot make each LIST slow, its container count cannot make a sync long.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from kubesim_images.daemon.kube import invalid
from kubesim_images.pod import FieldError

_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_RE = re.compile(_QNAME_FMT)
_LABEL_VALUE_FMT = f"({_QNAME_FMT})?"
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)

TOTAL_ANNOTATION_SIZE = 256 * 2**10  # apimachinery TotalAnnotationSizeLimitB
# The API server has no count limit of its own (its 1.5 MiB object limit bounds them); the
# simulation's, so a sync and a status render stay short, far above any real pod's.
MAX_CONTAINERS = 250
MAX_LABELS = 1000


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    """apimachinery's RegexError, spacing included ("'a',  or 'b', ...")."""
    quoted = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {quoted}regex used for validation is '{fmt}')"


_DNS_LABEL_MSG = _regex_error(
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character",
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?",
    "my-name",
    "123-abc",
)
_SUBDOMAIN_MSG = _regex_error(
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character",
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
    "example.com",
)
_QNAME_MSG = _regex_error(
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character",
    _QNAME_FMT,
    "MyName",
    "my.name",
    "123-abc",
)
_LABEL_VALUE_MSG = _regex_error(
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character",
    _LABEL_VALUE_FMT,
    "MyValue",
    "my_value",
    "12345",
)


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def dns_label_errors(value: str) -> list[str]:
    errors = [_max_len(63)] if len(value) > 63 else []
    if not _LABEL_RE.fullmatch(value):
        errors.append(_DNS_LABEL_MSG)
    return errors


def dns_subdomain_errors(value: str) -> list[str]:
    errors = [_max_len(253)] if len(value) > 253 else []
    if not _SUBDOMAIN_RE.fullmatch(value):
        errors.append(_SUBDOMAIN_MSG)
    return errors


def qualified_name_errors(value: str) -> list[str]:
    parts = value.split("/")
    if len(parts) > 2:
        example = "(e.g. 'example.com/MyName')"
        return [
            f"a qualified name {_QNAME_MSG} with an optional DNS subdomain prefix and '/' {example}"
        ]
    errors = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors += [f"prefix part {m}" for m in dns_subdomain_errors(prefix)]
    name = parts[-1]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append(f"name part {_max_len(63)}")
    if not _QNAME_RE.fullmatch(name):
        errors.append(f"name part {_QNAME_MSG}")
    return errors


def label_value_errors(value: str) -> list[str]:
    errors = [_max_len(63)] if len(value) > 63 else []
    if not _LABEL_VALUE_RE.fullmatch(value):
        errors.append(_LABEL_VALUE_MSG)
    return errors


def _invalid(field: str, value: str, message: str) -> FieldError:
    return FieldError(field, "FieldValueInvalid", f'Invalid value: "{value}": {message}')


def namespace_causes(namespace: str) -> list[FieldError]:
    return [_invalid("metadata.namespace", namespace, m) for m in dns_label_errors(namespace)]


def name_causes(name: str) -> list[FieldError]:
    return [_invalid("metadata.name", name, m) for m in dns_subdomain_errors(name)]


def metadata_causes(meta: Mapping[str, Any]) -> list[FieldError]:
    """Labels and annotations as ValidateObjectMeta checks them (string maps already checked)."""
    causes: list[FieldError] = []
    labels: Mapping[str, str] = meta.get("labels") or {}
    if len(labels) > MAX_LABELS:
        causes.append(
            FieldError(
                "metadata.labels",
                "FieldValueTooMany",
                f"Too many: {len(labels)}: must have at most {MAX_LABELS} items",
            )
        )
        return causes  # one line, not thousands
    for key, value in labels.items():
        causes += [_invalid("metadata.labels", key, m) for m in qualified_name_errors(key)]
        causes += [_invalid("metadata.labels", value, m) for m in label_value_errors(value)]
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    size = sum(len(k) + len(v) for k, v in annotations.items())
    if size > TOTAL_ANNOTATION_SIZE:
        causes.append(
            FieldError(
                "metadata.annotations",
                "FieldValueTooLong",
                f"Too long: must have at most {TOTAL_ANNOTATION_SIZE} bytes",
            )
        )
        return causes
    for key in annotations:
        causes += [
            _invalid("metadata.annotations", key, m) for m in qualified_name_errors(key.lower())
        ]
    return causes


def container_count_causes(spec: Any) -> list[FieldError]:
    causes = []
    if isinstance(spec, Mapping):
        for field in ("initContainers", "containers"):
            items = spec.get(field)
            if isinstance(items, list) and len(items) > MAX_CONTAINERS:
                causes.append(
                    FieldError(
                        f"spec.{field}",
                        "FieldValueTooMany",
                        f"Too many: {len(items)}: must have at most {MAX_CONTAINERS} items",
                    )
                )
    return causes


def require_valid(kind: str, name: str, causes: Sequence[FieldError]) -> None:
    """Raise the 422 Invalid Status when there is any cause."""
    if causes:
        raise invalid(kind, name, causes[:20])  # bounded: a body may carry thousands of bad keys
