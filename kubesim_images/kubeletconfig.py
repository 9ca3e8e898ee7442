"""The slice of `KubeletConfiguration` (kubelet.config.k8s.io/v1beta1) the image manager reads.

Defaulting follows `SetDefaults_KubeletConfiguration` and validation
`ValidateKubeletConfiguration`, with the kubelet's own error texts, so a configuration refused
here is refused by a real kubelet with the same words. Unknown fields of a full
KubeletConfiguration are accepted and ignored: users point us at the file their nodes use. A
field that is not one of ours but is spelled almost like one (`serialiseImagePulls`) is a typo
that would silently change the answer, so it is logged as the kubelet logs a field its strict
decoder does not know ("Using lenient decoding as strict decoding failed"), with the field meant.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from kubesim_images.errors import ConfigError, InvalidValueError
from kubesim_images.logging import get_logger
from kubesim_images.units import format_duration, parse_duration

API_VERSION = "kubelet.config.k8s.io/v1beta1"
KIND = "KubeletConfiguration"
# The KubeletConfiguration fields the image manager reads.
FIELDS = (
    "serializeImagePulls",
    "maxParallelImagePulls",
    "registryPullQPS",
    "registryBurst",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "imageMinimumGCAge",
    "imageMaximumGCAge",
)
_log = get_logger()
# Set by a loader that reads one document several times over (a scenario's variants: the base
# with each one's overrides): where a field is written in the file, or None when its warning
# was already given, so a typo is logged once, at its own place, not once per reading.
_locate: ContextVar[Callable[[str], str | None] | None] = ContextVar(
    "kubelet_field_locate", default=None
)


@contextlib.contextmanager
def locating_fields(locate: Callable[[str], str | None]) -> Iterator[None]:
    """Within it, a misspelt field's warning names `locate(path)`, and none when that is None."""
    token = _locate.set(locate)
    try:
        yield
    finally:
        _locate.reset(token)


def misspelt_fields(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, the field of ours it is spelled almost like) for each likely typo in `data`."""
    out: list[tuple[str, str]] = []
    for key in data:
        if not isinstance(key, str) or key in FIELDS or key in {"apiVersion", "kind"}:
            continue
        close = difflib.get_close_matches(key, FIELDS, n=1, cutoff=0.85)
        if close:
            out.append((key, close[0]))
    return out


@dataclass(frozen=True, slots=True)
class KubeletConfig:
    serialize_image_pulls: bool = True
    max_parallel_image_pulls: int | None = None
    registry_pull_qps: float = 5.0
    registry_burst: int = 10
    image_gc_high_threshold_percent: int = 85
    image_gc_low_threshold_percent: int = 80
    image_minimum_gc_age: float = 120.0
    image_maximum_gc_age: float = 0.0

    @property
    def pull_concurrency(self) -> int | None:
        """How many pulls may run at once on the node: 1 (serial), N, or None (no limit)."""
        if self.serialize_image_pulls:
            return 1
        return self.max_parallel_image_pulls


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"must be an integer, got {value!r}", path=field)
    return value


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {value!r}", path=field)
    return value


def _duration(value: Any, field: str) -> float:
    try:
        return parse_duration(value)
    except InvalidValueError as exc:
        raise ConfigError(str(exc), path=field) from None


def load_kubelet_config(data: Mapping[str, Any] | None, *, path: str = "") -> KubeletConfig:
    """Default and validate a KubeletConfiguration mapping (camelCase keys)."""
    data = dict(data or {})
    prefix = f"{path}." if path else ""
    locate = _locate.get()
    for key, meant in misspelt_fields(data):
        field: str | None = f"{prefix}{key}"
        if locate is not None and (field := locate(f"{prefix}{key}")) is None:
            continue
        _log.warning(
            "Using lenient decoding as strict decoding failed",
            err=f'strict decoding error: unknown field "{key}"',
            field=field,
            hint=f"did you mean {meant}? the kubelet ignores {key}",
        )
    api_version = data.get("apiVersion")
    if api_version is not None and api_version != API_VERSION:
        raise ConfigError(
            f"unsupported apiVersion {api_version!r} (want {API_VERSION})",
            path=f"{prefix}apiVersion",
        )
    kind = data.get("kind")
    if kind is not None and kind != KIND:
        raise ConfigError(f"unsupported kind {kind!r} (want {KIND})", path=f"{prefix}kind")

    max_parallel = data.get("maxParallelImagePulls")
    if max_parallel is not None:
        max_parallel = _int(max_parallel, f"{prefix}maxParallelImagePulls")
    serialize = data.get("serializeImagePulls")
    if serialize is None:
        # SetDefaults_KubeletConfiguration: serial unless maxParallelImagePulls asks for >= 2.
        serialize = max_parallel is None or max_parallel < 2
    else:
        serialize = _bool(serialize, f"{prefix}serializeImagePulls")
    qps = data.get("registryPullQPS")
    # An int32 in KubeletConfiguration: fractions do not decode.
    qps = 5.0 if qps is None else float(_int(qps, f"{prefix}registryPullQPS"))
    burst = _int(data.get("registryBurst", 0) or 0, f"{prefix}registryBurst")
    if burst == 0:
        burst = 10
    high = data.get("imageGCHighThresholdPercent")
    high = 85 if high is None else _int(high, f"{prefix}imageGCHighThresholdPercent")
    low = data.get("imageGCLowThresholdPercent")
    low = 80 if low is None else _int(low, f"{prefix}imageGCLowThresholdPercent")
    min_age = data.get("imageMinimumGCAge")
    min_age = 0.0 if min_age is None else _duration(min_age, f"{prefix}imageMinimumGCAge")
    if min_age == 0:
        min_age = 120.0  # zero means unset, defaulted to 2m
    max_age = data.get("imageMaximumGCAge")
    max_age = 0.0 if max_age is None else _duration(max_age, f"{prefix}imageMaximumGCAge")

    # In ValidateKubeletConfiguration's order: the aggregated message lists them so.
    errors: list[str] = []
    if not 0 <= high <= 100:
        errors.append(
            f"invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) "
            f"{high} must be between 0 and 100, inclusive"
        )
    if not 0 <= low <= 100:
        errors.append(
            f"invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) "
            f"{low} must be between 0 and 100, inclusive"
        )
    if low >= high:
        errors.append(
            f"invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {low} "
            f"must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {high}"
        )
    if max_age != 0 and min_age >= max_age:
        errors.append(
            f"invalid configuration: imageMaximumGCAge {format_duration(max_age)} must be "
            f"greater than imageMinimumGCAge {format_duration(min_age)}"
        )
    if burst < 0:
        errors.append(
            f"invalid configuration: registryBurst (--registry-burst) {burst} "
            "must not be a negative number"
        )
    if qps < 0:
        errors.append(
            f"invalid configuration: registryPullQPS (--registry-qps) {_go_num(qps)} "
            "must not be a negative number"
        )
    if max_parallel is not None and max_parallel < 1:
        errors.append(
            f"invalid configuration: maxParallelImagePulls {max_parallel} must be a positive number"
        )
    if serialize and max_parallel is not None and max_parallel > 1:
        errors.append(
            "invalid configuration: maxParallelImagePulls cannot be larger than 1 unless "
            "SerializeImagePulls (--serialize-image-pulls) is set to false"
        )
    if errors:
        # The kubelet aggregates all validation errors into one message: "[a, b]" when several.
        message = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        raise ConfigError(message, path=path)
    return KubeletConfig(
        serialize_image_pulls=serialize,
        max_parallel_image_pulls=max_parallel,
        registry_pull_qps=qps,
        registry_burst=burst,
        image_gc_high_threshold_percent=high,
        image_gc_low_threshold_percent=low,
        image_minimum_gc_age=min_age,
        image_maximum_gc_age=max_age,
    )


def _go_num(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
