"""Node pools: nodes alike in downlink, platform, labels, preloaded images, disk and kubelet
settings, read the same way from a scenario's `nodes` and the daemon's `node` / `nodePools`.

A pool is what a cloud provider calls one too: `count` identical nodes, each still its own
kubelet (its own pull queue, QPS bucket, back-off and image store). A pool's `kubelet` mapping
is merged field by field over the file's top-level `kubelet` before the kubelet's own defaulting
and validation run, so a pool that only says `{maxParallelImagePulls: 4}` keeps the rest, and a
bad combination is refused with the kubelet's text at the pool's path. The two files differ in
three places, which the caller says: node names (`node-<i>` for a scenario's one pool), the
default preloaded images, and what `dockerConfig` holds (inline in a scenario, a path for the
daemon); everything else is one reader.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubesim_images.errors import ConfigError
from kubesim_images.fields import Fields
from kubesim_images.image_gc import DEFAULT_SANDBOX_IMAGE
from kubesim_images.keyring import Credential
from kubesim_images.kubeletconfig import KubeletConfig, load_kubelet_config
from kubesim_images.oci.media import Platform
from kubesim_images.pod import DNS1123_LABEL
from kubesim_images.registry.catalogue import Catalogue, SimImage
from kubesim_images.registry.spec import parse_ref
from kubesim_images.store import ImageFsSpec, ImageStore, parse_image_fs, pinned_name

POOL_FIELDS = {
    "name",
    "count",
    "bandwidth",
    "labels",
    "platform",
    "preloadedImages",
    "dockerConfig",
    "imageFs",
    "sandboxImage",
    "kubelet",
}
# A node costs a few KiB in a scenario; past this a file is refused rather than left to the
# out-of-memory killer (scenario.model checks the total over pools against the same bound).
MAX_NODES = 1_000_000

# metav1 label values: empty, or alphanumeric at both ends with '-', '_', '.' inside; at most 63.
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")

DockerEntries = tuple[tuple[str, Credential], ...]
ReadCredentials = Callable[[Any, str], DockerEntries]  # (dockerConfig as written, path)


@dataclass(frozen=True, slots=True)
class NodePool:
    name: str
    count: int
    bandwidth: float  # bytes per second, inf when unlimited
    kubelet: KubeletConfig
    labels: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None  # real pulls only; None: the registry's (or the host's)
    preloaded: tuple[SimImage, ...] = ()
    credentials: DockerEntries = ()
    image_fs: ImageFsSpec = field(default_factory=ImageFsSpec)
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE  # normalized "name:tag" (or "name@digest")
    # How nodes are named: "<name>-<i>", or just "<name>" for a pool of one that asks for it.
    bare_name: bool = False

    def node_names(self) -> list[str]:
        if self.bare_name and self.count == 1:
            return [self.name]
        return [f"{self.name}-{i}" for i in range(self.count)]

    def image_store(self) -> ImageStore:
        """A new, empty image store for one of this pool's nodes: its disk, its pinned sandbox."""
        return ImageStore(
            capacity=self.image_fs.capacity,
            other_usage=self.image_fs.other_usage,
            pinned=[self.sandbox_image],
        )


@dataclass(frozen=True, slots=True)
class PoolDefaults:
    """What differs between a scenario and the daemon."""

    name: str
    bandwidth: str  # as written: "1Gbps", "unlimited"
    preloaded: Sequence[str] = ()
    bare_name: bool = False  # a pool of one named as the pool (the daemon's `kubesim-node`)
    catalogue_hint: str = ""  # where the catalogue is written, for the refusal of an image


def read_pool(
    ctx: Fields,
    raw: Any,
    path: str,
    *,
    defaults: PoolDefaults,
    kubelet: tuple[Mapping[str, Any], KubeletConfig],
    catalogue: Catalogue,
    real_registry: bool,
    read_credentials: ReadCredentials,
    max_nodes: int = MAX_NODES,
) -> NodePool:
    """One pool at `path`; `kubelet` is the file's top-level KubeletConfiguration, as written
    and as read (a pool without its own settings takes it as it is: read and warned about once)."""
    pool = ctx.mapping(raw, path, POOL_FIELDS)
    name = pool.get("name", defaults.name)
    if not isinstance(name, str) or not DNS1123_LABEL.fullmatch(name) or len(name) > 63:
        raise ctx.fail(f"{path}.name", f"must be a DNS label (lowercase, 1-63), got {name!r}")
    count = ctx.integer(pool.get("count", 1), f"{path}.count", minimum=1, maximum=max_nodes)
    bandwidth = ctx.bandwidth(pool.get("bandwidth", defaults.bandwidth), f"{path}.bandwidth")
    labels: dict[str, str] = {}
    for key, value in ctx.mapping(pool.get("labels"), f"{path}.labels").items():
        if not isinstance(value, str) or not _LABEL_VALUE.fullmatch(value):
            raise ctx.fail(
                f"{path}.labels.{key}", f"must be a label value (at most 63), got {value!r}"
            )
        labels[str(key)] = value
    platform = None
    if pool.get("platform") is not None:
        if not real_registry:
            raise ctx.fail(f"{path}.platform", "only with registry type oci")
        try:
            platform = Platform.parse(str(pool["platform"]))
        except ValueError as exc:
            raise ctx.fail(f"{path}.platform", str(exc)) from None
    preloaded: list[SimImage] = []
    images = pool.get("preloadedImages", list(defaults.preloaded))
    for index, image in enumerate(ctx.sequence(images, f"{path}.preloadedImages")):
        where = f"{path}.preloadedImages[{index}]"
        found = catalogue.resolve(parse_ref(ctx, image, where).with_default_tag())
        if found is None:
            raise ctx.fail(
                where, f"{image!r} is not in the registry's catalogue{defaults.catalogue_hint}"
            )
        preloaded.append(found)
    credentials: DockerEntries = ()
    if pool.get("dockerConfig"):
        credentials = read_credentials(pool["dockerConfig"], f"{path}.dockerConfig")
    sandbox = parse_ref(
        ctx, pool.get("sandboxImage", DEFAULT_SANDBOX_IMAGE), f"{path}.sandboxImage"
    )
    written, settings = kubelet
    own = ctx.mapping(pool.get("kubelet"), f"{path}.kubelet")
    if own:
        try:
            settings = load_kubelet_config(
                {**copy.deepcopy(dict(written)), **own}, path=f"{path}.kubelet"
            )
        except ConfigError as exc:
            raise ConfigError(exc.message, path=exc.path, source=ctx.source) from None
    return NodePool(
        name=name,
        count=count,
        bandwidth=bandwidth,
        kubelet=settings,
        labels=labels,
        platform=platform,
        preloaded=tuple(preloaded),
        credentials=credentials,
        image_fs=parse_image_fs(ctx, pool.get("imageFs"), f"{path}.imageFs"),
        sandbox_image=pinned_name(sandbox),
        bare_name=defaults.bare_name,
    )


def read_pools(
    ctx: Fields,
    single: Any,
    pools: Any,
    paths: tuple[str, str],
    **options: Any,
) -> tuple[NodePool, ...]:
    """Either one pool (`single`, a mapping) or a list of them (`pools`), never both; pool
    names, and so node names, must not collide."""
    single_path, pools_path = paths
    if single is not None and pools is not None:
        raise ctx.fail(pools_path, f"give {single_path} (one pool) or {pools_path}, not both")
    if pools is None:
        return (read_pool(ctx, single, single_path, **options),)
    raw = ctx.sequence(pools, pools_path)
    if not raw:
        raise ctx.fail(pools_path, "at least one pool")
    out: list[NodePool] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        where = f"{pools_path}[{index}]"
        if not isinstance(item, Mapping) or not item.get("name"):
            raise ctx.fail(f"{where}.name", "required: each pool needs a name")
        pool = read_pool(ctx, item, where, **{**options, "defaults": _named(options)})
        if pool.name in names:
            raise ctx.fail(f"{where}.name", f"duplicate pool name {pool.name!r}")
        names.add(pool.name)
        out.append(pool)
    total = sum(p.count for p in out)
    limit = options.get("max_nodes", MAX_NODES)
    if total > limit:
        raise ctx.fail(pools_path, f"at most {limit:,} nodes in all, got {total:,}")
    return tuple(out)


def _named(options: Mapping[str, Any]) -> PoolDefaults:
    """In a list every pool is named, and its nodes are `<pool>-<i>` even for a pool of one."""
    base: PoolDefaults = options["defaults"]
    return PoolDefaults(
        base.name,
        base.bandwidth,
        base.preloaded,
        bare_name=False,
        catalogue_hint=base.catalogue_hint,
    )
