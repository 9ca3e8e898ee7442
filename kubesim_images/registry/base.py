"""The small interface every registry backend implements, and the values crossing it.

A backend only speaks to registries: it resolves a reference (with a credential) to a manifest
- config digest, layers and their sizes, platform - and fetches the layers it is given into a
sink the puller hands it. It never sees the node's image store: deciding which layers the node
lacks, sharing a layer another pull on the node is fetching, and committing what arrived all
belong to the puller and the store (`pulling`), so a new backend is one package.
Backends raise only `RegistryError`: transport and protocol errors are mapped at this boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from kubesim_images.errors import RegistryError
from kubesim_images.keyring import Credential
from kubesim_images.reference import ImageReference
from kubesim_images.store import ImageRecord, Layer

if TYPE_CHECKING:
    # Only real registries write blobs: the simulated one, and so scenarios, never load the
    # content store (or SQLite).
    from kubesim_images.contentstore import BlobWriter


class PullRequest(NamedTuple):
    # A named tuple, not a frozen dataclass: made on every pull, five times faster.
    pull_id: int
    node: str
    ref: ImageReference
    credential: Credential | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a reference resolves to for the node's platform.

    `record` is the image as the node's store keeps it (id = config digest, layers with their
    sizes, the names the registry knows it by); the store copies it and nobody changes it, so a
    backend may hand the same one to every pull of an image. `detail` is the backend's own, for
    its `fetch` and its sink (the OCI backend keeps the fetched manifests there).
    """

    record: ImageRecord
    platform: str = ""
    detail: object = None

    @property
    def config_digest(self) -> str:
        return self.record.id

    @property
    def layers(self) -> tuple[Layer, ...]:
        return self.record.layers


class LayerSink(Protocol):
    """Where a backend writes the bytes it fetches for one node: that node's content store.

    A sink shares a blob being written between concurrent pulls (`downloading`), as containerd's
    content store does with its ingest locks. `commit` is the puller's, once a fetch is done:
    the sink records the image whose blobs it now holds. The simulated registry moves no bytes
    and writes into no sink.
    """

    def has_blob(self, digest: str) -> bool: ...

    def downloading(self, digest: str) -> AbstractAsyncContextManager[None]: ...

    def open_ingest(self, digest: str, size: int) -> BlobWriter: ...

    def leased(self, manifest: Manifest) -> AbstractAsyncContextManager[None]:
        """Held by one pull from its fetch to its commit: the blobs `manifest` names, once
        found or written, stay until then whatever other pulls of them do."""
        ...

    def lacks(self, layers: Sequence[Layer]) -> list[Layer]:
        """Of `layers` (which the node's store holds), those the sink does not: removed behind
        the store's back (`kubesim-images rmi` while the daemon runs). A sink that keeps
        nothing lacks nothing."""
        ...

    async def commit(self, manifest: Manifest) -> None: ...


class RegistryBackend(Protocol):
    async def resolve(self, request: PullRequest) -> Manifest:
        """Reference (+ credential) -> manifest; raise `RegistryError` on failure."""
        ...

    async def fetch(
        self,
        request: PullRequest,
        manifest: Manifest,
        layers: Sequence[Layer],
        sink: LayerSink | None,
    ) -> None:
        """Download `layers` (those the node lacks) into `sink`; raise `RegistryError`."""
        ...

    def progress(self, pull_id: int) -> tuple[float, int] | None:
        """(bytes done, bytes to download) of a pull in flight, None when unknown."""
        ...


Outcome = Manifest | RegistryError
"""What a callback-driven resolve ends with."""


@runtime_checkable
class CallbackBackend(RegistryBackend, Protocol):
    """A backend whose steps are started from callbacks and end in callbacks, on the node's
    `Scheduler`: no coroutine, so the same steps run on the daemon's loop and on a scenario's
    lean event core. The simulated registry is one; its timing is that of the coroutine steps
    exactly."""

    def begin_resolve(self, request: PullRequest, done: Callable[[Outcome], None]) -> None:
        """Start resolving; `done` is called (from the loop) with the manifest or the error."""
        ...

    def begin_fetch(
        self,
        request: PullRequest,
        layers: Sequence[Layer],
        done: Callable[[], None],
    ) -> None:
        """Start downloading `layers`; `done` is called once they have all arrived."""
        ...

    def cancel_fetch(self, request: PullRequest) -> None:
        """Stop a download `begin_fetch` started (a cancelled pull); a no-op when none runs."""
        ...
