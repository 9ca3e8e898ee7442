"""The scenario file (SPEC section 8): parsing, defaulting, validation and variants.

Every refusal names the file, the field and why (`rollout.yaml: spec.nodes.count: must be a
positive integer, got 0`), because the people writing these files are tuning production
kubelets and should never have to guess. Unknown fields are refused for the same reason: a typo
such as `serialiseImagePulls` would otherwise silently test the default.
"""

from __future__ import annotations

import copy
import hashlib
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kubesim_images.clock import to_ns
from kubesim_images.errors import ConfigError
from kubesim_images.fields import Fields
from kubesim_images.keyring import Credential, parse_docker_config
from kubesim_images.kubeletconfig import KubeletConfig, load_kubelet_config, locating_fields
from kubesim_images.nodepool import NodePool, PoolDefaults, read_pools
from kubesim_images.oci.config import OciRegistryConfig, parse_oci_registry
from kubesim_images.oci.media import Platform
from kubesim_images.pod import Pod, PodInvalidError, pod_from_manifest
from kubesim_images.podworkers import SyncSettings, read_sync_settings
from kubesim_images.registry.catalogue import SimImage
from kubesim_images.registry.spec import REGISTRY_FIELDS, RegistrySpec, parse_registry
from kubesim_images.scenario.nogc import no_cyclic_gc
from kubesim_images.store import ImageFsSpec

if TYPE_CHECKING:
    from hashlib import _Hash

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
    "secrets",
    "nodePools",
}

# (config key as written, credential) pairs, as keyring.parse_docker_config returns them.
DockerEntries = tuple[tuple[str, Credential], ...]


# Bounds that keep a run within a 24 GiB machine: a node costs a few KiB and a pod with its
# events about 6 KiB (100,000 nodes x 10 pods ran in 6.6 GiB); a file past them is refused
# with a message rather than left to the kernel's out-of-memory killer.
MAX_NODES = 1_000_000
MAX_PODS = 2_000_000


@dataclass(frozen=True, slots=True)
class WorkloadEntry:
    at: int  # ns
    replicas: int
    pod: Mapping[str, Any]
    namespace: str
    lifetime: int | None = None  # ns from creation to deletion; None: never deleted


@dataclass(frozen=True, slots=True)
class VariantSpec:
    """One fully resolved run of a scenario."""

    name: str
    seed: int
    duration: int  # ns
    kubelet: KubeletConfig  # the file's; each pool's own (merged over it) is the pool's
    sync: SyncSettings
    pools: tuple[NodePool, ...]  # `nodes` (one pool, nodes node-<i>) or `nodePools`
    registry: RegistrySpec
    workload: tuple[WorkloadEntry, ...]
    always_pull_images: bool = False
    pods: tuple[tuple[int, Pod], ...] = field(default=())
    secrets: Mapping[tuple[str, str], DockerEntries] = field(default_factory=dict)
    oci: OciRegistryConfig | None = None  # registry.type oci: real pulls, on the wall clock
    pod_lifetimes: Mapping[str, int] = field(default_factory=dict)  # pod uid -> ns

    # The first pool's settings, for files with one pool (as every file had before pools).
    @property
    def node_count(self) -> int:
        return sum(pool.count for pool in self.pools)

    @property
    def node_bandwidth(self) -> float:
        return self.pools[0].bandwidth

    @property
    def preloaded(self) -> tuple[SimImage, ...]:
        return self.pools[0].preloaded

    @property
    def node_credentials(self) -> DockerEntries:
        return self.pools[0].credentials

    @property
    def image_fs(self) -> ImageFsSpec:
        return self.pools[0].image_fs

    @property
    def sandbox_image(self) -> str:
        return self.pools[0].sandbox_image

    def platform(self, pool: NodePool) -> Platform | None:
        """What a pool's nodes pull: the pool's platform, else the registry's (else the host's)."""
        return pool.platform or (self.oci.platform if self.oci is not None else None)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    source: str
    variants: tuple[VariantSpec, ...]


def load_file(path: str | Path) -> Scenario:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read scenario: {exc.strerror}", source=source) from None
    return load_text(text, source=source)


def parse_yaml(text: str) -> Any:
    """`yaml.safe_load`, through libyaml's parser where PyYAML has it (its wheels do): the
    same documents (the constructor and resolver are PyYAML's own) in a tenth of the time,
    10 ms of a 1,000-node run's start. A document libyaml refuses is parsed again by PyYAML,
    so errors keep PyYAML's marks and texts."""
    if yaml.__with_libyaml__:
        try:
            return yaml.load(text, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def load_text(text: str, *, source: str = "<scenario>") -> Scenario:
    try:
        document = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {where}{problem}", source=source) from None
    return load_document(document, source=source)


def load_document(document: Any, *, source: str = "<scenario>") -> Scenario:
    with no_cyclic_gc():  # a workload's replicas are a million pods at 100,000 nodes
        return _load_document(document, source)


def _load_document(document: Any, source: str) -> Scenario:
    ctx = Fields(source)
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
    warned: set[str] = set()  # where a misspelt kubelet field was reported: once each
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
        where = f"spec (variant {vname})"

        def locate(field: str, where: str = where, overrides: Mapping[str, Any] = overrides) -> str:
            return _written_at(field, where, overrides)

        def once(field: str, locate: Callable[[str], str] = locate) -> str | None:
            at = locate(field)
            if at in warned:
                return None
            warned.add(at)
            return at

        try:
            with locating_fields(once):
                variants.append(_variant(ctx, vname, merged, where))
        except ConfigError as exc:
            raise ConfigError(exc.message, path=locate(exc.path), source=exc.source) from None
    return Scenario(name, source, tuple(variants))


_PATH_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _written_at(field: str, where: str, overrides: Mapping[str, Any]) -> str:
    """Where in the file a variant's field (`<where>.workload[0].replica`) is written: in
    the variant's overrides (named as it is), or in the base spec all variants share
    (`spec.workload[0].replica`), so a fault in the base is not blamed on a variant."""
    if not field.startswith(f"{where}."):
        return field
    rest = field[len(where) + 1 :]
    node: Any = overrides
    for match in _PATH_STEP.finditer(rest):
        if not isinstance(node, Mapping):
            break  # a list or value the variant replaced whole: all of it is the variant's
        key = match.group(1)
        if key is None or key not in node:
            return f"spec.{rest}"
        node = node[key]
    return field


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


def _variant(ctx: Fields, name: str, spec: Mapping[str, Any], where: str) -> VariantSpec:
    seed = spec.get("seed", 0)
    seed = ctx.integer(seed, f"{where}.seed")
    duration = to_ns(ctx.duration(spec.get("duration", "1h"), f"{where}.duration"))
    if duration <= 0:
        raise ctx.fail(f"{where}.duration", "must be positive")
    kubelet_doc = ctx.mapping(spec.get("kubelet"), f"{where}.kubelet")
    try:
        kubelet = load_kubelet_config(kubelet_doc, path=f"{where}.kubelet")
    except ConfigError as exc:
        raise ConfigError(exc.message, path=exc.path, source=ctx.source) from None
    sync = read_sync_settings(ctx, spec.get("sync"), f"{where}.sync")
    admission = ctx.mapping(spec.get("admission"), f"{where}.admission", {"alwaysPullImages"})
    always_pull = admission.get("alwaysPullImages", False)
    if not isinstance(always_pull, bool):
        raise ctx.fail(f"{where}.admission.alwaysPullImages", "must be true or false")
    raw_registry = dict(ctx.mapping(spec.get("registry"), f"{where}.registry"))
    kind = raw_registry.pop("type", "simulated")
    oci = None
    if kind == "oci":
        # Real registries (SPEC section 10): no catalogue; runs need --real-time.
        oci = parse_oci_registry(ctx, spec.get("registry"), f"{where}.registry")
        raw_registry = {}
    elif kind != "simulated":
        raise ctx.fail(
            f"{where}.registry.type", f"unsupported registry type {kind!r} (simulated, oci)"
        )
    registry = parse_registry(
        ctx,
        ctx.mapping(raw_registry, f"{where}.registry", REGISTRY_FIELDS),
        f"{where}.registry",
    )
    secrets = _secrets(ctx, spec.get("secrets"), f"{where}.secrets")
    pools = read_pools(
        ctx,
        spec.get("nodes", {}) if spec.get("nodePools") is None else spec.get("nodes"),
        spec.get("nodePools"),
        (f"{where}.nodes", f"{where}.nodePools"),
        defaults=PoolDefaults(
            name="node", bandwidth="unlimited", catalogue_hint=" (spec.registry.images)"
        ),
        kubelet=(kubelet_doc, kubelet),
        catalogue=registry.catalogue,
        real_registry=oci is not None,
        read_credentials=lambda raw, path: _docker_config(ctx, raw, path, "node docker config"),
        max_nodes=MAX_NODES,
    )
    workload, pods, lifetimes = _workload(
        ctx, spec.get("workload"), f"{where}.workload", always_pull
    )
    return VariantSpec(
        name=name,
        seed=seed,
        duration=duration,
        kubelet=kubelet,
        sync=sync,
        pools=pools,
        registry=registry,
        workload=workload,
        always_pull_images=always_pull,
        pods=pods,
        secrets=secrets,
        oci=oci,
        pod_lifetimes=lifetimes,
    )


def _docker_config(ctx: Fields, raw: Any, path: str, source: str) -> DockerEntries:
    """A config.json document written inline (`{auths: {registry: {username, password}}}`)."""
    try:
        return tuple(parse_docker_config(ctx.mapping(raw, path), source=source))
    except ConfigError as exc:
        where = f"{path}.{exc.path}" if exc.path else path
        raise ctx.fail(where, exc.message) from None


def _secrets(ctx: Fields, raw: Any, where: str) -> dict[tuple[str, str], DockerEntries]:
    """Pull secrets pods can name in `imagePullSecrets`: a name and an inline docker config."""
    out: dict[tuple[str, str], DockerEntries] = {}
    for index, item in enumerate(ctx.sequence(raw, where)):
        path = f"{where}[{index}]"
        entry = ctx.mapping(item, path, {"name", "namespace", "dockerConfig"})
        name, namespace = entry.get("name"), entry.get("namespace", "default")
        if not isinstance(name, str) or not name:
            raise ctx.fail(f"{path}.name", "required: the name pods give in imagePullSecrets")
        if not isinstance(namespace, str) or not namespace:
            raise ctx.fail(f"{path}.namespace", "must be a non-empty string")
        if (namespace, name) in out:
            raise ctx.fail(f"{path}.name", f"duplicate secret {namespace}/{name}")
        out[(namespace, name)] = _docker_config(
            ctx, entry.get("dockerConfig"), f"{path}.dockerConfig", f"secret {namespace}/{name}"
        )
    return out


def _workload(
    ctx: Fields, raw: Any, where: str, always_pull: bool
) -> tuple[tuple[WorkloadEntry, ...], tuple[tuple[int, Pod], ...], dict[str, int]]:
    entries: list[WorkloadEntry] = []
    for index, item in enumerate(ctx.sequence(raw, where)):
        path = f"{where}[{index}]"
        entry = ctx.mapping(item, path, {"at", "replicas", "pod", "lifetime"})
        at = to_ns(ctx.duration(entry.get("at", "0s"), f"{path}.at"))
        lifetime = None
        if entry.get("lifetime") is not None:
            lifetime = to_ns(ctx.duration(entry["lifetime"], f"{path}.lifetime"))
            if lifetime <= 0:
                raise ctx.fail(f"{path}.lifetime", "must be positive")
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
        entries.append(WorkloadEntry(at, replicas, pod, namespace, lifetime))
    total = sum(entry.replicas for entry in entries)
    if total > MAX_PODS:
        raise ctx.fail(where, f"at most {MAX_PODS:,} pods in all (replicas), got {total:,}")
    # Stable sort: entries with the same `at` keep file order (round-robin placement).
    ordered = sorted(enumerate(entries), key=lambda pair: (pair[1].at, pair[0]))
    pods: list[tuple[int, Pod]] = []
    lifetimes: dict[str, int] = {}
    stems: set[tuple[str, str]] = set()
    for index, item in ordered:
        base = item.pod.get("metadata") or {}
        stem: str = base["name"]  # checked above: a non-empty string
        namespace, at, lifetime = item.namespace, item.at, item.lifetime
        # Validate and default the entry once, as its first replica; the others differ only in
        # name and UID, so they are stamped from it (100,000 replicas cost one validation).
        first = f"{stem}-0"
        try:
            template = pod_from_manifest(
                {**item.pod, "metadata": {**base, "name": first}},
                namespace=namespace,
                always_pull_images=always_pull,
                uid=_uid(namespace, first),
            )
        except PodInvalidError as exc:
            cause = exc.causes[0]
            raise ctx.fail(f"{where}[{index}].pod.{cause.field}", cause.message) from None
        # Replica names are `<stem>-<i>`, and the part after a name's last `-` is its index:
        # two entries' pods can share a name only if they share namespace and stem, and then
        # they do at once, at replica 0 (where a check of every name would first find it).
        if (namespace, stem) in stems:
            raise ctx.fail(
                f"{where}[{index}].pod.metadata.name",
                f"pod {namespace}/{first} is created twice (pod names must be unique)",
            )
        stems.add((namespace, stem))
        stamp = _stamper(template)
        uid_prefix = _uid_prefix(namespace)
        pods.append((at, template))
        for replica in range(1, item.replicas):
            name = f"{stem}-{replica}"
            if len(name) > _MAX_NAME:
                # The one check that depends on the name (a longer suffix can overflow it):
                # validate that replica in full, for the API server's own text.
                try:
                    pod_from_manifest({**item.pod, "metadata": {**base, "name": name}})
                except PodInvalidError as exc:
                    cause = exc.causes[0]
                    raise ctx.fail(f"{where}[{index}].pod.{cause.field}", cause.message) from None
            pods.append((at, stamp(name, _uid_from(uid_prefix, name))))
        if lifetime is not None:
            for _at, created in pods[len(pods) - item.replicas :]:
                lifetimes[created.uid] = lifetime
    return tuple(entries), tuple(pods), lifetimes


def _stamper(template: Pod) -> Callable[[str, str], Pod]:
    """Copies of a validated pod, each with its own name and UID and every other field the
    template's (whatever fields Pod gains). They are set straight into each copy's slots: the
    frozen dataclass's `__init__` sets each through `object.__setattr__`, twice the time, which
    is a second at a million replicas. (Pod has no `__post_init__` deriving fields from the
    name; the test that compares each replica with its own manifest's pod would see one.)"""
    setters = {f.name: getattr(Pod, f.name).__set__ for f in fields(Pod)}
    set_name, set_uid = setters.pop("name"), setters.pop("uid")
    others = tuple((set_field, getattr(template, name)) for name, set_field in setters.items())
    new = object.__new__

    def stamp(name: str, uid: str) -> Pod:
        pod = new(Pod)
        set_name(pod, name)
        set_uid(pod, uid)
        for set_field, value in others:
            set_field(pod, value)
        return pod

    return stamp


# metadata.name is a DNS-1123 subdomain: at most 253 characters.
_MAX_NAME = 253


_URL_NAMESPACE = uuid.NAMESPACE_URL.bytes


def _uid(namespace: str, name: str) -> str:
    """`str(uuid.uuid5(NAMESPACE_URL, "kubesim://pods/<ns>/<name>"))`, without building a UUID
    object: a million replicas each need one. Deterministic UIDs keep back-off keys, and so
    whole runs, identical across runs."""
    return _uid_from(_uid_prefix(namespace), name)


def _uid_prefix(namespace: str) -> _Hash:
    """The SHA-1 state after the namespace URL and the namespace's part of the pod's URL:
    copied per replica, so each hashes only its own name."""
    return hashlib.sha1(  # noqa: S324 - UUID version 5 is defined on SHA-1
        _URL_NAMESPACE + f"kubesim://pods/{namespace}/".encode()
    )


def _uid_from(prefix: _Hash, name: str) -> str:
    state = prefix.copy()
    state.update(name.encode())
    h = state.hexdigest()
    # The first 16 bytes, with the version (5) and the RFC 4122 variant set in their digits.
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


# A digit of the variant byte's high nibble, its top two bits set to 10.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
