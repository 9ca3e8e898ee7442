"""The daemon's configuration file, and the embedded default `make run` uses.

```yaml
apiVersion: kubesim.io/v1alpha1
kind: DaemonConfig
node: {name: kubesim-node, count: 1, bandwidth: 1Gbps, labels: {pool: default},
       dockerConfig: ~/.docker/config.json, preloadedImages: [registry.k8s.io/pause:3.10],
       imageFs: {capacity: 100Gi, otherUsage: 0}, sandboxImage: registry.k8s.io/pause:3.10,
       kubelet: {}}                   # one pool; or, instead, several:
# nodePools: [{name: big, count: 10, bandwidth: 10Gbps, platform: linux/arm64, ...}, ...]
kubeletConfigFile: /var/lib/kubelet/config.yaml   # a real KubeletConfiguration, or inline:
kubelet: {serializeImagePulls: false, maxParallelImagePulls: 3}
admission: {alwaysPullImages: false}
sync: {errorRequeue: 10s, jitterFactor: 0.5}
registry: {latency: 200ms, bandwidth: unlimited, bundledCatalogue: true, images: [], faults: []}
api: {maxBodyBytes: 3Mi, maxConnections: 1000, headerTimeout: 10s, bodyTimeout: 60s,
      keepAliveTimeout: 60s}
```
Paths are relative to the config file. Invalid settings are refused at start-up with the
kubelet's own texts, and the daemon exits non-zero. `node` and each of `nodePools` are read by
`nodepool.read_pool`, the reader of scenario files' pools: a pool's `kubelet` is merged over the
top-level one; `node` of count 1 is the node `kubesim-node`, of count N the nodes
`kubesim-node-0` .. `-<N-1>`; a pool's nodes are `<pool>-<i>`.
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
from kubesim_images.keyring import Credential, load_docker_config
from kubesim_images.kubeletconfig import KubeletConfig, load_kubelet_config
from kubesim_images.nodepool import NodePool, PoolDefaults, read_pools
from kubesim_images.oci.config import OciRegistryConfig, parse_oci_registry
from kubesim_images.podworkers import SyncSettings, read_sync_settings
from kubesim_images.registry.catalogue import Catalogue, SimImage
from kubesim_images.registry.spec import REGISTRY_FIELDS, RegistrySpec, parse_registry
from kubesim_images.store import ImageFsSpec

API_VERSION = "kubesim.io/v1alpha1"
KIND = "DaemonConfig"
_TOP = {
    "apiVersion",
    "kind",
    "node",
    "nodePools",
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


# A node costs a pull queue, a store, a worker per pod and an image GC timer: the daemon answers
# `kubectl get nodes` from memory, so its node count is bounded well below a scenario's.
MAX_DAEMON_NODES = 10_000


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    pools: tuple[NodePool, ...]
    kubelet: KubeletConfig  # the file's; each pool's (merged over it) is its nodes'
    always_pull_images: bool
    sync: SyncSettings
    registry: RegistrySpec
    seed: int
    max_body_bytes: int
    source: str
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    oci: OciRegistryConfig | None = None  # registry.type oci: real pulls, SPEC section 10

    # The first node's settings: what a one-node config (every config before pools) says.
    @property
    def node_name(self) -> str:
        return self.pools[0].node_names()[0]

    @property
    def node_bandwidth(self) -> float:
        return self.pools[0].bandwidth

    @property
    def preloaded(self) -> tuple[SimImage, ...]:
        return self.pools[0].preloaded

    @property
    def node_credentials(self) -> tuple[tuple[str, Credential], ...]:
        return self.pools[0].credentials

    @property
    def image_fs(self) -> ImageFsSpec:
        return self.pools[0].image_fs

    @property
    def sandbox_image(self) -> str:
        return self.pools[0].sandbox_image  # pinned: image GC never removes it

    @property
    def node_count(self) -> int:
        return sum(pool.count for pool in self.pools)


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

    pools = read_pools(
        ctx,
        root.get("node"),
        root.get("nodePools"),
        ("node", "nodePools"),
        defaults=PoolDefaults(
            name="kubesim-node",
            bandwidth="1Gbps",
            # A real registry: nothing preloaded that was not pulled for real.
            preloaded=() if oci is not None else ("registry.k8s.io/pause:3.10",),
            bare_name=True,
        ),
        kubelet=(kubelet_doc, kubelet),
        catalogue=spec.catalogue,
        real_registry=oci is not None,
        read_credentials=lambda raw, _path: tuple(load_docker_config(_resolve(base, raw))),
        max_nodes=MAX_DAEMON_NODES,
    )

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
        pools=pools,
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
