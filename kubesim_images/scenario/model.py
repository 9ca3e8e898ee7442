"""The scenario file (SPEC section 8): parsing, defaulting, validation and variants.

Every refusal names the file, the field and why (`rollout.yaml: spec.nodes.count: must be a
positive integer, got 0`), because the people writing these files are tuning production
kubelets and should never have to guess. Unknown fields are refused for the same reason: a typo
such as `serialiseImagePulls` would otherwise silently test the default.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubesim_images.errors import ConfigError, InvalidReferenceError, InvalidValueError
from kubesim_images.kubeletconfig import KubeletConfig, load_kubelet_config
from kubesim_images.pod import Pod, PodInvalidError, pod_from_manifest
from kubesim_images.podworkers import SyncSettings
from kubesim_images.reference import parse_normalized
from kubesim_images.registry.catalogue import Catalogue, SimImage, make_image
from kubesim_images.registry.simulated import ERROR_KINDS, Fault, RateLimit
from kubesim_images.units import parse_bandwidth, parse_duration, parse_size

API_VERSION = "kubesim.io/v1alpha1"
KIND = "Scenario"
_SPEC_FIELDS = {
    "seed",
    "duration",
    "kubelet",
    "sync",
    "nodes",
    "registry",
    "workload",
    "variants",
    "admission",
}


@dataclass(frozen=True, slots=True)
class WorkloadEntry:
    at: float
    replicas: int
    pod: Mapping[str, Any]
    namespace: str


@dataclass(frozen=True, slots=True)
class RegistrySpec:
    catalogue: Catalogue
    latency: float
    bandwidth: float
    faults: tuple[Fault, ...]
    rate_limit: RateLimit | None


@dataclass(frozen=True, slots=True)
class VariantSpec:
    """One fully resolved run of a scenario."""

    name: str
    seed: int
    duration: float
    kubelet: KubeletConfig
    sync: SyncSettings
    node_count: int
    node_bandwidth: float
    preloaded: tuple[SimImage, ...]
    registry: RegistrySpec
    workload: tuple[WorkloadEntry, ...]
    always_pull_images: bool = False
    pods: tuple[tuple[float, Pod], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    source: str
    variants: tuple[VariantSpec, ...]


class _Ctx:
    """Where we are in the file, so every error can say so."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(message, path=path, source=self.source)

    def mapping(self, value: Any, path: str, allowed: set[str] | None = None) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(path, f"must be a mapping, got {type(value).__name__}")
        if allowed is not None:
            unknown = sorted(str(k) for k in value if k not in allowed)
            if unknown:
                raise self.fail(
                    f"{path}.{unknown[0]}" if path else unknown[0],
                    f"unknown field (expected one of: {', '.join(sorted(allowed))})",
                )
        return value

    def sequence(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list, got {type(value).__name__}")
        return value

    def integer(self, value: Any, path: str, *, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise self.fail(path, f"must be {what}, got {value!r}")
        return value

    def number(self, value: Any, path: str, *, low: float, high: float) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise self.fail(path, f"must be a number between {low:g} and {high:g}, got {value!r}")
        return float(value)

    def duration(self, value: Any, path: str) -> float:
        try:
            return parse_duration(value)
        except InvalidValueError as exc:
            raise self.fail(path, str(exc)) from None

    def size(self, value: Any, path: str) -> int:
        try:
            return parse_size(value)
        except InvalidValueError as exc:
            raise self.fail(path, str(exc)) from None

    def bandwidth(self, value: Any, path: str) -> float:
        try:
            return parse_bandwidth(value)
        except InvalidValueError as exc:
            raise self.fail(path, str(exc)) from None


def load_file(path: str | Path) -> Scenario:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read scenario: {exc.strerror}", source=source) from None
    return load_text(text, source=source)


def load_text(text: str, *, source: str = "<scenario>") -> Scenario:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {where}{problem}", source=source) from None
    return load_document(document, source=source)


def load_document(document: Any, *, source: str = "<scenario>") -> Scenario:
    ctx = _Ctx(source)
    root = ctx.mapping(document, "", {"apiVersion", "kind", "metadata", "spec"})
    if root.get("apiVersion") != API_VERSION:
        raise ctx.fail("apiVersion", f"must be {API_VERSION}, got {root.get('apiVersion')!r}")
    if root.get("kind") != KIND:
        raise ctx.fail("kind", f"must be {KIND}, got {root.get('kind')!r}")
    meta = ctx.mapping(root.get("metadata"), "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ctx.fail("metadata.name", "required: a name for the scenario")
    spec = ctx.mapping(root.get("spec"), "spec", _SPEC_FIELDS)
    base = {k: v for k, v in spec.items() if k != "variants"}
    raw_variants = ctx.sequence(spec.get("variants"), "spec.variants")
    if not raw_variants:
        return Scenario(name, source, (_variant(ctx, "default", base, "spec"),))
    variants: list[VariantSpec] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_variants):
        path = f"spec.variants[{index}]"
        overrides = ctx.mapping(raw, path, _SPEC_FIELDS - {"variants"} | {"name"})
        vname = overrides.get("name")
        if not isinstance(vname, str) or not vname:
            raise ctx.fail(f"{path}.name", "required: each variant needs a name")
        if vname in seen:
            raise ctx.fail(f"{path}.name", f"duplicate variant name {vname!r}")
        seen.add(vname)
        merged = _merge(base, {k: v for k, v in overrides.items() if k != "name"})
        variants.append(_variant(ctx, vname, merged, f"spec (variant {vname})"))
    return Scenario(name, source, tuple(variants))


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Variant overrides: mappings merge key by key, anything else (lists too) replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        current = out.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            out[key] = _merge(current, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _variant(ctx: _Ctx, name: str, spec: Mapping[str, Any], where: str) -> VariantSpec:
    seed = spec.get("seed", 0)
    seed = ctx.integer(seed, f"{where}.seed")
    duration = ctx.duration(spec.get("duration", "1h"), f"{where}.duration")
    if duration <= 0:
        raise ctx.fail(f"{where}.duration", "must be positive")
    try:
        kubelet = load_kubelet_config(
            ctx.mapping(spec.get("kubelet"), f"{where}.kubelet"), path=f"{where}.kubelet"
        )
    except ConfigError as exc:
        raise ConfigError(exc.message, path=exc.path, source=ctx.source) from None
    sync_raw = ctx.mapping(spec.get("sync"), f"{where}.sync", {"errorRequeue", "jitterFactor"})
    sync = SyncSettings(
        error_requeue=ctx.duration(
            sync_raw.get("errorRequeue", "10s"), f"{where}.sync.errorRequeue"
        ),
        jitter_factor=ctx.number(
            sync_raw.get("jitterFactor", 0.5), f"{where}.sync.jitterFactor", low=0.0, high=10.0
        ),
    )
    if sync.error_requeue <= 0:
        raise ctx.fail(f"{where}.sync.errorRequeue", "must be positive")
    admission = ctx.mapping(spec.get("admission"), f"{where}.admission", {"alwaysPullImages"})
    always_pull = admission.get("alwaysPullImages", False)
    if not isinstance(always_pull, bool):
        raise ctx.fail(f"{where}.admission.alwaysPullImages", "must be true or false")
    registry = _registry(
        ctx,
        ctx.mapping(
            spec.get("registry"),
            f"{where}.registry",
            {"latency", "bandwidth", "images", "faults", "rateLimit"},
        ),
        f"{where}.registry",
    )
    nodes = ctx.mapping(
        spec.get("nodes"), f"{where}.nodes", {"count", "bandwidth", "preloadedImages"}
    )
    count = ctx.integer(nodes.get("count", 1), f"{where}.nodes.count", minimum=1)
    node_bw = ctx.bandwidth(nodes.get("bandwidth", "unlimited"), f"{where}.nodes.bandwidth")
    preloaded: list[SimImage] = []
    for index, image in enumerate(
        ctx.sequence(nodes.get("preloadedImages"), f"{where}.nodes.preloadedImages")
    ):
        path = f"{where}.nodes.preloadedImages[{index}]"
        ref = _ref(ctx, image, path)
        found = registry.catalogue.resolve(ref.with_default_tag())
        if found is None:
            raise ctx.fail(
                path, f"{image!r} is not in the registry's catalogue (spec.registry.images)"
            )
        preloaded.append(found)
    workload, pods = _workload(ctx, spec.get("workload"), f"{where}.workload", always_pull)
    return VariantSpec(
        name=name,
        seed=seed,
        duration=duration,
        kubelet=kubelet,
        sync=sync,
        node_count=count,
        node_bandwidth=node_bw,
        preloaded=tuple(preloaded),
        registry=registry,
        workload=workload,
        always_pull_images=always_pull,
        pods=pods,
    )


def _ref(ctx: _Ctx, value: Any, path: str) -> Any:
    if not isinstance(value, str):
        raise ctx.fail(path, f"must be an image reference string, got {value!r}")
    try:
        return parse_normalized(value)
    except InvalidReferenceError as exc:
        raise ctx.fail(path, f"{value!r}: {exc}") from None


def _registry(ctx: _Ctx, raw: Mapping[str, Any], where: str) -> RegistrySpec:
    images: list[SimImage] = []
    seen: set[str] = set()
    for index, item in enumerate(ctx.sequence(raw.get("images"), f"{where}.images")):
        path = f"{where}.images[{index}]"
        entry = ctx.mapping(item, path, {"name", "layers"})
        ref = _ref(ctx, entry.get("name"), f"{path}.name")
        layers: list[tuple[int, str | None]] = []
        raw_layers = ctx.sequence(entry.get("layers"), f"{path}.layers")
        if not raw_layers:
            raise ctx.fail(f"{path}.layers", "required: at least one layer ({size: 10Mi})")
        for lindex, layer in enumerate(raw_layers):
            lpath = f"{path}.layers[{lindex}]"
            spec = ctx.mapping(layer, lpath, {"size", "digest"})
            if "size" not in spec:
                raise ctx.fail(f"{lpath}.size", "required")
            digest = spec.get("digest")
            if digest is not None and not _is_digest(digest):
                raise ctx.fail(
                    f"{lpath}.digest", f"invalid digest {digest!r} (want sha256:<64 lowercase hex>)"
                )
            layers.append((ctx.size(spec["size"], f"{lpath}.size"), digest))
        image = make_image(ref.with_default_tag() if not ref.digest else ref, layers)
        key = str(image.ref)
        if key in seen:
            raise ctx.fail(f"{path}.name", f"duplicate image {key}")
        seen.add(key)
        images.append(image)
    faults: list[Fault] = []
    for index, item in enumerate(ctx.sequence(raw.get("faults"), f"{where}.faults")):
        path = f"{where}.faults[{index}]"
        entry = ctx.mapping(item, path, {"image", "failFirst", "probability", "error"})
        error = entry.get("error", "internal error")
        if not isinstance(error, str) or not error:
            raise ctx.fail(
                f"{path}.error", "must be an error kind such as " + ", ".join(sorted(ERROR_KINDS))
            )
        image_ref = _ref(ctx, entry["image"], f"{path}.image") if "image" in entry else None
        fail_first = (
            ctx.integer(entry["failFirst"], f"{path}.failFirst", minimum=1)
            if "failFirst" in entry
            else None
        )
        probability = (
            ctx.number(entry["probability"], f"{path}.probability", low=0.0, high=1.0)
            if "probability" in entry
            else None
        )
        faults.append(
            Fault(error=error, image=image_ref, fail_first=fail_first, probability=probability)
        )
    rate_limit = None
    if raw.get("rateLimit") is not None:
        rl = ctx.mapping(raw["rateLimit"], f"{where}.rateLimit", {"pulls", "window", "perNode"})
        pulls = ctx.integer(rl.get("pulls"), f"{where}.rateLimit.pulls", minimum=1)
        window = ctx.duration(rl.get("window", "6h"), f"{where}.rateLimit.window")
        if window <= 0:
            raise ctx.fail(f"{where}.rateLimit.window", "must be positive")
        per_node = rl.get("perNode", False)
        if not isinstance(per_node, bool):
            raise ctx.fail(f"{where}.rateLimit.perNode", "must be true or false")
        rate_limit = RateLimit(pulls=pulls, window=window, per_node=per_node)
    latency = ctx.duration(raw.get("latency", "0s"), f"{where}.latency")
    bandwidth = ctx.bandwidth(raw.get("bandwidth", "unlimited"), f"{where}.bandwidth")
    return RegistrySpec(Catalogue(images), latency, bandwidth, tuple(faults), rate_limit)


def _is_digest(value: Any) -> bool:
    if not isinstance(value, str) or not value.startswith("sha256:"):
        return False
    hexpart = value[7:]
    return len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart)


def _workload(
    ctx: _Ctx, raw: Any, where: str, always_pull: bool
) -> tuple[tuple[WorkloadEntry, ...], tuple[tuple[float, Pod], ...]]:
    entries: list[WorkloadEntry] = []
    names: set[str] = set()
    for index, item in enumerate(ctx.sequence(raw, where)):
        path = f"{where}[{index}]"
        entry = ctx.mapping(item, path, {"at", "replicas", "pod"})
        at = ctx.duration(entry.get("at", "0s"), f"{path}.at")
        replicas = ctx.integer(entry.get("replicas", 1), f"{path}.replicas", minimum=1)
        pod = ctx.mapping(entry.get("pod"), f"{path}.pod", {"metadata", "spec"})
        if not pod:
            raise ctx.fail(f"{path}.pod", "required: a Pod (metadata.name and spec.containers)")
        meta = ctx.mapping(pod.get("metadata"), f"{path}.pod.metadata")
        if not isinstance(meta.get("name"), str) or not meta.get("name"):
            raise ctx.fail(f"{path}.pod.metadata.name", "required: pods are named <name>-<i>")
        namespace = meta.get("namespace", "default")
        if not isinstance(namespace, str) or not namespace:
            raise ctx.fail(f"{path}.pod.metadata.namespace", "must be a non-empty string")
        entries.append(WorkloadEntry(at, replicas, pod, namespace))
    # Stable sort: entries with the same `at` keep file order (round-robin placement).
    ordered = sorted(enumerate(entries), key=lambda pair: (pair[1].at, pair[0]))
    pods: list[tuple[float, Pod]] = []
    for index, item in ordered:
        base = item.pod.get("metadata") or {}
        for replica in range(item.replicas):
            name = f"{base.get('name')}-{replica}"
            manifest = {**item.pod, "metadata": {**base, "name": name}}
            key = f"{item.namespace}/{name}"
            if key in names:
                raise ctx.fail(
                    f"{where}[{index}].pod.metadata.name",
                    f"pod {key} is created twice (pod names must be unique)",
                )
            names.add(key)
            try:
                created = pod_from_manifest(
                    manifest,
                    namespace=item.namespace,
                    always_pull_images=always_pull,
                    uid=_uid(item.namespace, name),
                )
            except PodInvalidError as exc:
                cause = exc.causes[0]
                raise ctx.fail(f"{where}[{index}].pod.{cause.field}", cause.message) from None
            pods.append((item.at, created))
    return tuple(entries), tuple(pods)


def _uid(namespace: str, name: str) -> str:
    # Deterministic UIDs keep back-off keys, and so whole runs, identical across runs.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kubesim://pods/{namespace}/{name}"))
