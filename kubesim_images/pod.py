"""The Pod as the image manager sees it: identity, containers in order, pull secrets.

Parsed from the Kubernetes shape (a `v1.Pod` mapping, as kubectl sends or a scenario writes),
validated with the API server's field paths and texts, and defaulted once at creation
(`imagePullPolicy` per `SetDefaults_Container`, then the AlwaysPullImages admission). The
result is immutable: the stored policy is never recomputed. An init container with
`restartPolicy: Always` is a sidecar (on by default since 1.29): it is started in order with the
other init containers, and then keeps running beside the app containers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubesim_images.placement import NodeAffinity, node_affinity
from kubesim_images.policy import PullPolicy, effective_policy

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def label_invalid(value: str) -> str:
    """The API server's text for a value that is not an RFC 1123 label."""
    return (
        f'Invalid value: "{value}": a lowercase RFC 1123 label must consist of lower case '
        "alphanumeric characters or '-', and must start and end with an alphanumeric "
        "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    )


@dataclass(frozen=True, slots=True)
class FieldError:
    """One API validation failure: `reason` is a `metav1.CauseType` (FieldValueRequired, ...)."""

    field: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class PodInvalidError(ValueError):
    """A Pod that the API server would answer with 422 Invalid."""

    def __init__(self, name: str, causes: Sequence[FieldError]) -> None:
        self.name = name
        self.causes = list(causes)
        details = ", ".join(str(c) for c in self.causes)
        super().__init__(f'Pod "{name}" is invalid: {details}')


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    image: str
    pull_policy: PullPolicy
    init: bool = False
    sidecar: bool = False  # an init container with restartPolicy: Always
    # involvedObject.fieldPath of its events, made once: every event of every pull needs it.
    field_path: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kind = "spec.initContainers" if self.init else "spec.containers"
        object.__setattr__(self, "field_path", f"{kind}{{{self.name}}}")


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    uid: str
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...] = ()
    image_pull_secrets: tuple[str, ...] = ()
    service_account: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    node_name: str = ""  # spec.nodeName as created: bound to that node, no scheduling
    node_selector: Mapping[str, str] = field(default_factory=dict)  # spec.nodeSelector
    node_affinity: NodeAffinity = None  # its required node affinity

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def all_containers(self) -> tuple[Container, ...]:
        return self.init_containers + self.containers


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _validate_name(value: Any, path: str, errors: list[FieldError]) -> str:
    if not isinstance(value, str) or not value:
        errors.append(
            FieldError(
                path, "FieldValueRequired", "Required value: name or generateName is required"
            )
        )
        return ""
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(value):
        errors.append(
            FieldError(
                path,
                "FieldValueInvalid",
                f'Invalid value: "{value}": a lowercase RFC 1123 subdomain must consist of lower '
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        )
    return value


def _containers(
    raw: Any,
    path: str,
    always_pull: bool,
    errors: list[FieldError],
    seen: set[str],
    *,
    init: bool,
) -> tuple[Container, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.append(FieldError(path, "FieldValueInvalid", "Invalid value: must be a list"))
        return ()
    out: list[Container] = []
    for index, item in enumerate(raw):
        where = f"{path}[{index}]"
        if not isinstance(item, Mapping):
            errors.append(
                FieldError(where, "FieldValueInvalid", "Invalid value: must be an object")
            )
            continue
        name = _str(item.get("name")) or ""
        if not name:
            errors.append(FieldError(f"{where}.name", "FieldValueRequired", "Required value"))
        elif len(name) > 63 or not DNS1123_LABEL.fullmatch(name):
            errors.append(
                FieldError(
                    f"{where}.name",
                    "FieldValueInvalid",
                    label_invalid(name),
                )
            )
        elif name in seen:
            errors.append(
                FieldError(f"{where}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"')
            )
        seen.add(name)
        image = item.get("image")
        if not isinstance(image, str) or not image.strip():
            errors.append(FieldError(f"{where}.image", "FieldValueRequired", "Required value"))
            image = ""
        elif image != image.strip():
            errors.append(
                FieldError(
                    f"{where}.image",
                    "FieldValueInvalid",
                    "Invalid value: must not have leading or trailing whitespace",
                )
            )
        restart = item.get("restartPolicy")
        sidecar = False
        if restart not in (None, ""):
            if not init:
                # 1.32's validateContainers: only init containers may have one.
                errors.append(
                    FieldError(
                        f"{where}.restartPolicy",
                        "FieldValueForbidden",
                        "Forbidden: may not be set for non-init containers",
                    )
                )
            elif restart != "Always":
                errors.append(
                    FieldError(
                        f"{where}.restartPolicy",
                        "FieldValueNotSupported",
                        f'Unsupported value: "{restart}": supported values: "Always"',
                    )
                )
            else:
                sidecar = True
        written = item.get("imagePullPolicy")
        policy: PullPolicy | None = None
        if written not in (None, ""):
            try:
                policy = PullPolicy(written)
            except ValueError:
                supported = '"Always", "IfNotPresent", "Never"'
                errors.append(
                    FieldError(
                        f"{where}.imagePullPolicy",
                        "FieldValueNotSupported",
                        f'Unsupported value: "{written}": supported values: {supported}',
                    )
                )
        out.append(
            Container(
                name=name,
                image=image,
                init=init,
                sidecar=sidecar,
                pull_policy=effective_policy(image, policy, always_pull_images=always_pull),
            )
        )
    return tuple(out)


def pod_from_manifest(
    manifest: Mapping[str, Any],
    *,
    namespace: str = "default",
    always_pull_images: bool = False,
    uid: str | None = None,
    extra_pull_secrets: Sequence[str] = (),
) -> Pod:
    """Validate and default a `v1.Pod` mapping; raises `PodInvalidError` with field causes."""
    errors: list[FieldError] = []
    meta = manifest.get("metadata") or {}
    spec = manifest.get("spec")
    if not isinstance(meta, Mapping):
        meta = {}
        errors.append(
            FieldError("metadata", "FieldValueInvalid", "Invalid value: must be an object")
        )
    name = _validate_name(meta.get("name"), "metadata.name", errors)
    ns = _str(meta.get("namespace")) or namespace
    if not isinstance(spec, Mapping):
        errors.append(FieldError("spec.containers", "FieldValueRequired", "Required value"))
        raise PodInvalidError(name, errors)
    seen: set[str] = set()
    init = _containers(
        spec.get("initContainers"),
        "spec.initContainers",
        always_pull_images,
        errors,
        seen,
        init=True,
    )
    apps = _containers(
        spec.get("containers"), "spec.containers", always_pull_images, errors, seen, init=False
    )
    if not apps and not any(e.field.startswith("spec.containers") for e in errors):
        errors.append(FieldError("spec.containers", "FieldValueRequired", "Required value"))
    secrets: list[str] = []
    raw_secrets = spec.get("imagePullSecrets") or []
    if not isinstance(raw_secrets, list):
        errors.append(
            FieldError(
                "spec.imagePullSecrets", "FieldValueInvalid", "Invalid value: must be a list"
            )
        )
        raw_secrets = []
    for index, ref in enumerate(raw_secrets):
        secret_name = _str(ref.get("name")) if isinstance(ref, Mapping) else None
        if not secret_name:
            errors.append(
                FieldError(
                    f"spec.imagePullSecrets[{index}].name", "FieldValueRequired", "Required value"
                )
            )
        else:
            secrets.append(secret_name)
    for extra in extra_pull_secrets:
        if extra not in secrets:
            secrets.append(extra)
    if errors:
        raise PodInvalidError(name, errors)
    labels = meta.get("labels") or {}
    selector = spec.get("nodeSelector") or {}
    return Pod(
        namespace=ns,
        name=name,
        uid=uid or _str(meta.get("uid")) or str(uuid.uuid4()),
        containers=apps,
        init_containers=init,
        image_pull_secrets=tuple(secrets),
        service_account=_str(spec.get("serviceAccountName")) or "default",
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
        node_name=_str(spec.get("nodeName")) or "",
        node_selector=(
            {str(k): str(v) for k, v in selector.items()} if isinstance(selector, Mapping) else {}
        ),
        node_affinity=node_affinity(spec),
    )
