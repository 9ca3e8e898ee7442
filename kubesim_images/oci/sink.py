"""A node's content store as the sink the puller hands the OCI backend.

Blobs are written through the content store's ingests (verified, then renamed into place) and
shared between concurrent pulls by its per-digest locks. A pull leases its image's blobs for
its whole length (`leased`), so another pull ending meanwhile removes none of them. `commit`,
once a pull's fetch is done, names the image in the store's database; with `store: discard`
the record is dropped at once and the blobs no other pull in progress needs go when the lease
ends (verified and counted, the disk not kept).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from kubesim_images.contentstore import BlobWriter, ContentStore
from kubesim_images.errors import RegistryError
from kubesim_images.oci.pull import Resolved, record
from kubesim_images.registry.base import Manifest
from kubesim_images.store import Layer


class ContentSink:
    """A `LayerSink` over one node's `ContentStore`."""

    def __init__(self, content: ContentStore, *, keep: bool, now: Callable[[], float]) -> None:
        self.content = content
        self.keep = keep
        self._now = now  # calendar seconds, for the records' last-used time

    def has_blob(self, digest: str) -> bool:
        return self.content.has_blob(digest)

    def downloading(self, digest: str) -> AbstractAsyncContextManager[None]:
        return self.content.downloading(digest)

    def leased(self, manifest: Manifest) -> AbstractAsyncContextManager[None]:
        resolved = manifest.detail
        if not isinstance(resolved, Resolved):
            msg = "a manifest the OCI backend did not resolve"
            raise RegistryError(msg)
        digests = [m.digest for m in resolved.manifests] + [d.digest for d in resolved.blobs]
        return self.content.leased(digests, sweep=not self.keep)

    def open_ingest(self, digest: str, size: int) -> BlobWriter:
        return self.content.open_ingest(digest, size)

    def lacks(self, layers: Sequence[Layer]) -> list[Layer]:
        if not self.keep:
            return []
        unique = {layer.digest: layer for layer in layers}
        return [layer for digest, layer in unique.items() if not self.content.has_blob(digest)]

    async def commit(self, manifest: Manifest) -> None:
        resolved = manifest.detail
        if not isinstance(resolved, Resolved):
            msg = "a manifest the OCI backend did not resolve"
            raise RegistryError(msg)
        image = await record(self.content, resolved, now=self._now(), partial=not self.keep)
        if not self.keep:
            self.content.remove(image.id)

    def close(self) -> None:
        self.content.close()
