"""The daemon's configuration file, and the embedded default `make run` uses.

```yaml
apiVersion: kubesim.io/v1alpha1
kind: DaemonConfig
node: {name: kubesim-node, bandwidth: 1Gbps, dockerConfig: ~/.docker/config.json,
       preloadedImages: [registry.k8s.io/pause:3.10], imageFs: {capacity: 100Gi, otherUsage: 0},
       sandboxImage: registry.k8s.io/pause:3.10}
kubeletConfigFile: /var/lib/kubelet/config.yaml   # a real KubeletConfiguration, or inline:
kubelet: {serializeImagePulls: false, maxParallelImagePulls: 3}
admission: {alwaysPullImages: false}
sync: {errorRequeue: 10s, jitterFactor: 0.5}
registry: {latency: 200ms, bandwidth: unlimited, bundledCatalogue: true, images: [], faults: []}
api: {maxBodyBytes: 3Mi, maxConnections: 1000, headerTimeout: 10s, bodyTimeout: 60s,
      keepAliveTimeout: 60s}
```
Paths are relative to the config file. Invalid settings are refused at start-up with the
kubelet's own texts, and the daemon exits non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kubesim_images.daemon.catalogue import bundled_images
from kubesim_images.errors import ConfigError
from kubesim_images.fields import Fields
from kubesim_images.image_gc import DEFAULT_SANDBOX_IMAGE
from kubesim_images.keyring import Credential, load_docker_config
from kubesim_images.kubeletconfig import KubeletConfig, load_kubelet_config
from kubesim_images.oci.config import OciRegistryConfig, parse_oci_registry
from kubesim_images.podworkers import SyncSettings, read_sync_settings
from kubesim_images.registry.catalogue import Catalogue, SimImage
from kubesim_images.registry.spec import REGISTRY_FIELDS, RegistrySpec, parse_ref, parse_registry
from kubesim_images.store import ImageFsSpec, parse_image_fs, pinned_name

API_VERSION = "kubesim.io/v1alpha1"
KIND = "DaemonConfig"
_TOP = {
    "apiVersion",
    "kind",
    "node",
    "kubelet",
    "kubeletConfigFile",
    "admission",
    "sync",
    "registry",
    "api",
}


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How long a client may take and how many may be connected (`api:` in the config)."""

    max_connections: int = 1000
    header_timeout: float = 10.0  # from connecting to a complete first request head
    body_timeout: float = 60.0  # to send a request body, once its head is in
    keep_alive_timeout: float = 60.0  # an idle connection between requests


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    node_name: str
    node_bandwidth: float
    preloaded: tuple[SimImage, ...]
    node_credentials: tuple[tuple[str, Credential], ...]
    kubelet: KubeletConfig
    always_pull_images: bool
    sync: SyncSettings
    registry: RegistrySpec
    seed: int
    max_body_bytes: int
    source: str
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    oci: OciRegistryConfig | None = None  # registry.type oci: real pulls, SPEC section 10
    image_fs: ImageFsSpec = field(default_factory=ImageFsSpec)
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE  # pinned: image GC never removes it


def load_config(path: str | Path | None) -> DaemonConfig:
    """The config in `path`, or the embedded default (config/daemon.yaml's twin) when None."""
    if path is None:
        text = (resources.files("kubesim_images") / "data" / "daemon.yaml").read_text("utf-8")
        return parse_config(yaml.safe_load(text), source="<embedded>")
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", source=source) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", source=source) from None
    return parse_config(document, source=source, base=Path(path).parent)


def parse_config(document: Any, *, source: str, base: Path | None = None) -> DaemonConfig:
    ctx = Fields(source)
    root = ctx.mapping(document, "", _TOP)
    if root.get("apiVersion", API_VERSION) != API_VERSION:
        raise ctx.fail("apiVersion", f"must be {API_VERSION}, got {root.get('apiVersion')!r}")
    if root.get("kind", KIND) != KIND:
        raise ctx.fail("kind", f"must be {KIND}, got {root.get('kind')!r}")
    base = base or Path.cwd()

    kubelet_doc: dict[str, Any] = {}
    if root.get("kubeletConfigFile"):
        kubelet_path = _resolve(base, root["kubeletConfigFile"])
        try:
            loaded = yaml.safe_load(kubelet_path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ctx.fail("kubeletConfigFile", f"cannot read {kubelet_path}: {exc}") from None
        kubelet_doc.update(ctx.mapping(loaded, "kubeletConfigFile"))
    kubelet_doc.update(ctx.mapping(root.get("kubelet"), "kubelet"))
    try:
        kubelet = load_kubelet_config(kubelet_doc, path="kubelet")
    except ConfigError as exc:
        raise ConfigError(exc.message, path=exc.path, source=source) from None

    kind = ctx.mapping(root.get("registry"), "registry").get("type", "simulated")
    if kind not in ("simulated", "oci"):
        raise ctx.fail("registry.type", f"unsupported registry type {kind!r} (simulated, oci)")
    oci = None
    if kind == "oci":
        # A real registry: no catalogue, nothing preloaded that was not pulled for real.
        oci = parse_oci_registry(ctx, root.get("registry"), "registry")
        raw_registry: dict[str, Any] = {"bundledCatalogue": False, "latency": "0s"}
    else:
        raw_registry = dict(
            ctx.mapping(
                root.get("registry"),
                "registry",
                REGISTRY_FIELDS | {"bundledCatalogue", "seed", "type"},
            )
        )
        raw_registry.pop("type", None)
    bundled = raw_registry.pop("bundledCatalogue", True)
    seed = ctx.integer(raw_registry.pop("seed", 0), "registry.seed")
    spec = parse_registry(ctx, raw_registry, "registry")
    if bundled:
        own = {str(image.ref) for image in spec.catalogue.images()}
        merged = [i for i in bundled_images() if str(i.ref) not in own]
        spec = RegistrySpec(
            Catalogue([*merged, *spec.catalogue.images()]),
            spec.latency,
            spec.bandwidth,
            spec.faults,
            spec.rate_limit,
        )
    if "latency" not in raw_registry:
        spec = RegistrySpec(spec.catalogue, 0.2, spec.bandwidth, spec.faults, spec.rate_limit)

    node = ctx.mapping(
        root.get("node"),
        "node",
        {"name", "bandwidth", "dockerConfig", "preloadedImages", "imageFs", "sandboxImage"},
    )
    image_fs = parse_image_fs(ctx, node.get("imageFs"), "node.imageFs")
    sandbox = parse_ref(ctx, node.get("sandboxImage", DEFAULT_SANDBOX_IMAGE), "node.sandboxImage")
    name = node.get("name", "kubesim-node")
    if not isinstance(name, str) or not name:
        raise ctx.fail("node.name", "must be a non-empty string")
    preloaded: list[SimImage] = []
    default_preloaded = [] if oci is not None else ["registry.k8s.io/pause:3.10"]
    for index, image in enumerate(
        ctx.sequence(node.get("preloadedImages", default_preloaded), "node.preloadedImages")
    ):
        ref = parse_ref(ctx, image, f"node.preloadedImages[{index}]")
        found = spec.catalogue.resolve(ref.with_default_tag())
        if found is None:
            raise ctx.fail(
                f"node.preloadedImages[{index}]", f"{image!r} is not in the registry's catalogue"
            )
        preloaded.append(found)
    credentials: tuple[tuple[str, Credential], ...] = ()
    if node.get("dockerConfig"):
        credentials = tuple(load_docker_config(_resolve(base, node["dockerConfig"])))

    admission = ctx.mapping(root.get("admission"), "admission", {"alwaysPullImages"})
    always_pull = admission.get("alwaysPullImages", False)
    if not isinstance(always_pull, bool):
        raise ctx.fail("admission.alwaysPullImages", "must be true or false")
    api = ctx.mapping(
        root.get("api"),
        "api",
        {"maxBodyBytes", "maxConnections", "headerTimeout", "bodyTimeout", "keepAliveTimeout"},
    )
    limits = ConnectionLimits(
        max_connections=ctx.integer(
            api.get("maxConnections", 1000), "api.maxConnections", minimum=1
        ),
        header_timeout=_positive(ctx, api.get("headerTimeout", "10s"), "api.headerTimeout"),
        body_timeout=_positive(ctx, api.get("bodyTimeout", "60s"), "api.bodyTimeout"),
        keep_alive_timeout=_positive(
            ctx, api.get("keepAliveTimeout", "60s"), "api.keepAliveTimeout"
        ),
    )
    return DaemonConfig(
        image_fs=image_fs,
        sandbox_image=pinned_name(sandbox),
        node_name=name,
        node_bandwidth=ctx.bandwidth(node.get("bandwidth", "1Gbps"), "node.bandwidth"),
        preloaded=tuple(preloaded),
        node_credentials=credentials,
        kubelet=kubelet,
        always_pull_images=always_pull,
        sync=read_sync_settings(ctx, root.get("sync"), "sync"),
        registry=spec,
        seed=seed,
        max_body_bytes=ctx.size(api.get("maxBodyBytes", "3Mi"), "api.maxBodyBytes"),
        source=source,
        limits=limits,
        oci=oci,
    )


def _positive(ctx: Fields, value: Any, path: str) -> float:
    seconds = ctx.duration(value, path)
    if seconds <= 0:
        raise ctx.fail(path, f"must be a positive duration, got {value!r}")
    return seconds


def _resolve(base: Path, value: Any) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path
