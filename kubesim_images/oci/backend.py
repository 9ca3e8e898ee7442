"""The OCI client behind the `RegistryBackend` interface the puller drives.

Pulls go through the same queue, QPS limit, back-off and events as simulated ones. `resolve`
fetches the manifests (the index, then the platform's) and hands back the image as the node's
store keeps it; `fetch` streams the config and the layers the puller asks for into the node's
sink (`sink.ContentSink`, its content store), verified before they are committed. The backend
owns one connection pool and knows no store. Progress is the bytes fetched so far of each pull
in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Self

from kubesim_images.errors import RegistryError
from kubesim_images.oci.client import RegistryClient
from kubesim_images.oci.config import OciRegistryConfig
from kubesim_images.oci.downlink import Downlink
from kubesim_images.oci.pull import Resolved, fetch, resolve
from kubesim_images.registry.base import LayerSink, Manifest, PullRequest
from kubesim_images.store import ImageRecord, Layer


class OciRegistry:
    """A `RegistryBackend` owning one connection pool: opened by the first pull, or by
    `async with`; `close()` ends it."""

    def __init__(self, config: OciRegistryConfig, downlink: Downlink | None = None) -> None:
        self.config = config
        self.client = RegistryClient(config.client)
        self.downlink = downlink  # the node's bandwidth, enforced on the real downloads
        self.bytes_fetched = 0
        self._progress: dict[int, tuple[float, int]] = {}
        self._open = False
        # Opening awaits (the client loads its CAs in a thread): the first pulls of a run,
        # arriving together, open one pool, not one each.
        self._opening = asyncio.Lock()

    async def open(self) -> None:
        async with self._opening:
            if not self._open:
                await self.client.__aenter__()
                self._open = True

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self.client.__aexit__(None, None, None)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def resolve(self, request: PullRequest) -> Manifest:
        await self.open()
        resolved = await resolve(
            self.client, request.ref, credential=request.credential, platform=self.config.platform
        )
        manifest = resolved.manifest
        ref = resolved.ref
        return Manifest(
            ImageRecord(
                id=manifest.config.digest,
                layers=tuple(Layer(d.digest, d.size) for d in manifest.layers),
                repo_tags=[f"{ref.name}:{ref.tag}"] if ref.tag else [],
                repo_digests=[resolved.repo_digest],
            ),
            resolved.platform,
            resolved,
        )

    async def fetch(
        self,
        request: PullRequest,
        manifest: Manifest,
        layers: Sequence[Layer],
        sink: LayerSink | None,
    ) -> None:
        resolved = manifest.detail
        if sink is None or not isinstance(resolved, Resolved):
            # A wiring bug, not a registry's answer: the factory gives OCI nodes a sink.
            msg = "the OCI backend fetches into a content store: the node has none"
            raise RegistryError(msg)
        await self.open()

        def progress(done: int, total: int) -> None:
            self._progress[request.pull_id] = (float(done), total)

        try:
            self.bytes_fetched += await fetch(
                self.client,
                sink,
                resolved,
                credential=request.credential,
                progress=progress,
                throttle=self.downlink.consume if self.downlink is not None else None,
                layers={layer.digest for layer in layers},
            )
        finally:
            self._progress.pop(request.pull_id, None)

    def progress(self, pull_id: int) -> tuple[float, int] | None:
        return self._progress.get(pull_id)
