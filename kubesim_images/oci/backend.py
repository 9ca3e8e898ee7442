"""The OCI client behind the `RegistryBackend` interface the puller drives.

Pulls go through the same queue, QPS limit, back-off and events as simulated ones; this adapter
only turns a `PullRequest` into a real pull into the content store and the stored image into the
node store's `ImageRecord`. Progress is the bytes fetched so far of each pull in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

from kubesim_images.contentstore import ContentStore
from kubesim_images.oci.client import RegistryClient
from kubesim_images.oci.config import OciRegistryConfig
from kubesim_images.oci.downlink import Downlink
from kubesim_images.oci.pull import pull_image
from kubesim_images.registry.base import PullRequest
from kubesim_images.store import ImageRecord, Layer


class OciRegistry:
    """A `RegistryBackend` owning one connection pool: opened by the first pull, or by
    `async with`; `close()` ends it."""

    def __init__(
        self,
        config: OciRegistryConfig,
        store: ContentStore,
        now: Callable[[], float],
        downlink: Downlink | None = None,
    ) -> None:
        self.config = config
        self.client = RegistryClient(config.client)
        self.content = store
        self.downlink = downlink  # the node's bandwidth, enforced on the real downloads
        self.bytes_fetched = 0
        self._now = now  # calendar seconds, for the records' last-used time
        self._progress: dict[int, tuple[float, int]] = {}
        self._open = False

    async def open(self) -> None:
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

    async def pull(self, request: PullRequest) -> ImageRecord:
        await self.open()

        def progress(done: int, total: int) -> None:
            self._progress[request.pull_id] = (float(done), total)

        try:
            result = await pull_image(
                self.client,
                self.content,
                request.ref,
                credential=request.credential,
                platform=self.config.platform,
                now=self._now(),
                progress=progress,
                throttle=self.downlink.consume if self.downlink is not None else None,
            )
        finally:
            self._progress.pop(request.pull_id, None)
        self.bytes_fetched += result.fetched_bytes
        image = result.image
        if self.config.store == "discard":
            self.content.remove(image.id)  # verified and counted; the disk is not kept
        return ImageRecord(
            id=image.id,
            layers=tuple(Layer(digest, size) for digest, size in image.layers),
            repo_tags=list(image.repo_tags),
            repo_digests=list(image.repo_digests),
        )

    def progress(self, pull_id: int) -> tuple[float, int] | None:
        return self._progress.get(pull_id)
