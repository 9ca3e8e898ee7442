"""One factory for what a run's nodes pull through: the daemon and scenarios both call `build`.

`registry.type: simulated` gives one `SimulatedRegistry` shared by every node (they share its
egress, and its faults and rate limits count across nodes) and no sinks: simulated layers have
no bytes. `registry.type: oci` gives each node its own OCI client pulling its pool's platform,
content store (nodes do not share disks, so each pulls what it lacks) and, with a finite pool
bandwidth, a `Downlink` enforced on its real downloads. The OCI package, and aiohttp with it,
is imported only then.
A node whose content store keeps what it pulls has its image GC work on that store
(`runtime`): the same GC code, removing blobs from disk.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubesim_images.image_gc import ImageRuntime
from kubesim_images.registry.base import LayerSink, RegistryBackend
from kubesim_images.registry.simulated import SimulatedRegistry
from kubesim_images.registry.spec import RegistrySpec
from kubesim_images.scheduler import Scheduler
from kubesim_images.store import ImageStore

if TYPE_CHECKING:
    from kubesim_images.oci.backend import OciRegistry
    from kubesim_images.oci.config import OciRegistryConfig
    from kubesim_images.oci.media import Platform
    from kubesim_images.oci.sink import ContentSink


class Registries:
    """The backend and the sink of each node, and what they moved, for reports and metrics."""

    def __init__(
        self,
        simulated: SimulatedRegistry | None,
        make_oci: Callable[[str, float, Platform | None], tuple[OciRegistry, ContentSink]]
        | None = None,
    ) -> None:
        self.simulated = simulated
        self.oci: dict[str, tuple[OciRegistry, ContentSink]] = {}
        self._make_oci = make_oci

    def node(
        self, name: str, bandwidth: float, platform: Platform | None = None
    ) -> tuple[RegistryBackend, LayerSink | None]:
        """The backend and sink for node `name`, whose downlink is `bandwidth` bytes/s and
        which pulls `platform` (its pool's; None: the registry config's, else the host's)."""
        if self.simulated is not None:
            self.simulated.set_node_bandwidth(name, bandwidth)
            return self.simulated, None
        assert self._make_oci is not None  # noqa: S101 - set by `build` when not simulated
        backend, sink = self.oci[name] = self._make_oci(name, bandwidth, platform)
        return backend, sink

    @property
    def bytes_fetched(self) -> int:
        if self.simulated is not None:
            return self.simulated.bytes_sent
        return sum(backend.bytes_fetched for backend, _ in self.oci.values())

    def stats(self) -> dict[str, Any]:
        """What the real registries saw: requests, status codes, bytes and retries."""
        codes: Counter[int] = Counter()
        clients = [backend.client for backend, _ in self.oci.values()]
        for client in clients:
            codes.update(client.status_codes)
        return {
            "requests": sum(c.requests for c in clients),
            "statusCodes": {str(code): n for code, n in sorted(codes.items())},
            "bytes": self.bytes_fetched,
            "retries": sum(c.retries for c in clients),
        }

    def runtime(
        self,
        name: str,
        store: ImageStore,
        *,
        capacity: int | None,
        other_usage: int,
        pinned: Collection[str],
    ) -> ImageRuntime:
        """What image GC on node `name` works through: its content store when it keeps what
        it pulls (blobs removed from disk, the node's `store` kept in step), else `store`. The
        content store's image filesystem is then `capacity` bytes holding `other_usage` besides
        it (None: the disk it is on, measured); images named by a `pinned` reference stay."""
        found = self.oci.get(name)
        if found is None or not found[1].keep:
            return store
        from kubesim_images.runtime import ContentRuntime  # noqa: PLC0415 - real pulls only

        content = found[1].content
        content.capacity, content.other_usage = capacity, other_usage
        content.pinned_names = frozenset(pinned)
        return ContentRuntime(content, store)

    async def close(self) -> None:
        for backend, sink in self.oci.values():
            await backend.close()
            sink.close()


def build(
    spec: RegistrySpec,
    oci: OciRegistryConfig | None,
    *,
    seed: int,
    node_bandwidth: float,
    content_root: Callable[[str], Path],
    now: Callable[[], float],
    scheduler: Scheduler | None = None,
) -> Registries:
    """The registries a run pulls through. `node_bandwidth` is the simulated registry's default
    downlink (`Registries.node` sets each node's); `content_root(node)` is where a node's content
    store lives (real pulls); `now` the calendar seconds its records are stamped with."""
    if oci is None:
        return Registries(
            SimulatedRegistry(
                spec.catalogue,
                latency=spec.latency,
                bandwidth=spec.bandwidth,
                node_bandwidth=node_bandwidth,
                faults=spec.faults,
                rate_limit=spec.rate_limit,
                seed=seed,
                scheduler=scheduler,
            )
        )
    from kubesim_images.contentstore import ContentStore  # noqa: PLC0415 - real pulls only
    from kubesim_images.oci.backend import OciRegistry  # noqa: PLC0415
    from kubesim_images.oci.downlink import Downlink  # noqa: PLC0415
    from kubesim_images.oci.sink import ContentSink  # noqa: PLC0415

    keep = oci.store == "keep"

    def make(
        node: str, bandwidth: float, platform: Platform | None
    ) -> tuple[OciRegistry, ContentSink]:
        downlink = None if math.isinf(bandwidth) else Downlink(bandwidth)
        config = oci if platform is None else dataclasses.replace(oci, platform=platform)
        # discard: verified, counted and dropped, so nothing is worth an fsync
        content = ContentStore(content_root(node), durable=keep)
        return OciRegistry(config, downlink), ContentSink(content, keep=keep, now=now)

    return Registries(None, make)
