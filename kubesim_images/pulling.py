"""One pull against a backend, once it has its slot: resolve, what the node lacks, fetch, commit.

The backend only resolves and fetches (`registry.base`); this module decides which layers the
node's store lacks, shares a layer another pull on the node is already fetching (the store
knows which, as containerd's content store does: the second pull waits instead of downloading
it twice), and commits what arrived to the store - all or nothing, refused with containerd's
`no space left on device` when the image filesystem is full - and to the backend's sink.

A `CallbackBackend` (the simulated registry) is driven by callbacks that settle one future
(`begin`, then `finish`), so a pull suspends once however many steps it takes; a pull that must
wait for another's layers falls back to the coroutine steps (`fetch_missing`), which do the same
things in the same order.
"""

from __future__ import annotations

import asyncio

from kubesim_images.errors import RegistryError
from kubesim_images.reference import ImageReference
from kubesim_images.registry.base import (
    CallbackBackend,
    LayerSink,
    Manifest,
    Outcome,
    PullRequest,
    RegistryBackend,
)
from kubesim_images.registryerrors import failed_to_pull
from kubesim_images.store import ImageRecord, ImageStore, Layer, NoSpaceLeftError


def no_space_error(exc: NoSpaceLeftError, ref: ImageReference) -> RegistryError:
    """containerd's pull error when the content store cannot write a fetched layer."""
    return RegistryError(failed_to_pull(ref, f"failed to copy: {exc}"), code=exc.code)


async def pull(
    backend: RegistryBackend, store: ImageStore, sink: LayerSink | None, request: PullRequest
) -> ImageRecord:
    """The whole pull as one coroutine; raises `RegistryError`."""
    if isinstance(backend, CallbackBackend):
        run = CallbackPull(backend, store, sink, request, asyncio.get_running_loop())
        run.begin()
        return await run.finish()
    manifest = await backend.resolve(request)
    await fetch_missing(backend, store, sink, request, manifest, always=True)
    if sink is not None:
        await sink.commit(manifest)
    return manifest.record


async def fetch_missing(
    backend: RegistryBackend,
    store: ImageStore,
    sink: LayerSink | None,
    request: PullRequest,
    manifest: Manifest,
    *,
    always: bool = False,
) -> None:
    """Fetch the layers the node lacks; wait for those another pull is fetching.

    Loops because a layer whose fetch was cancelled must then be fetched by whoever still needs
    it. With `always`, the backend is asked once even when no layer is missing: a real backend
    has more than layers to write into its sink (manifests, the config).
    """
    first = always
    while (missing := store.missing_layers(manifest.layers)) or first:
        own = [layer for layer in missing if store.fetching(layer.digest) is None]
        waits = [f for layer in missing if (f := store.fetching(layer.digest)) is not None]
        if first and sink is not None:
            # Layers the store holds but the sink lost (removed behind the store's back): the
            # sink's image record names every blob, so they are fetched again.
            counted = {layer.digest for layer in missing}
            own += [
                layer
                for layer in sink.lacks(manifest.layers)
                if layer.digest not in counted and store.fetching(layer.digest) is None
            ]
        if own or first:
            first = False
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            store.claim(own, done)
            try:
                await backend.fetch(request, manifest, own, sink)
                try:
                    store.add_layers(own)
                except NoSpaceLeftError as exc:
                    raise no_space_error(exc, request.ref) from None
            finally:
                store.release(own, done)
        for waited in waits:
            await asyncio.shield(waited)


class CallbackPull:
    """One pull through a `CallbackBackend`: `begin` from any callback, then await `finish`.

    The future settles with the manifest or an error; `complete` says whether its layers are
    all on the node by then. When another pull on the node is fetching some of them, `finish`
    completes the pull with the coroutine steps. A pull cancelled before its resolve ends
    leaves the backend's callback to find the future done and do nothing.
    """

    __slots__ = ("_claimed", "backend", "complete", "future", "request", "sink", "store")

    def __init__(
        self,
        backend: CallbackBackend,
        store: ImageStore,
        sink: LayerSink | None,
        request: PullRequest,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.backend = backend
        self.store = store
        self.sink = sink
        self.request = request
        self.future: asyncio.Future[Manifest] = loop.create_future()
        self.complete = False
        self._claimed: tuple[list[Layer], asyncio.Future[None]] | None = None

    def begin(self) -> None:
        self.backend.begin_resolve(self.request, self._resolved)

    async def finish(self) -> ImageRecord:
        try:
            manifest = await self.future
        except asyncio.CancelledError:
            self._abandon()
            raise
        if self.sink is None:
            if not self.complete:
                await fetch_missing(self.backend, self.store, self.sink, self.request, manifest)
            return manifest.record
        # A sink has more to be written than the layers the store lacks: ask once more.
        await fetch_missing(
            self.backend, self.store, self.sink, self.request, manifest, always=True
        )
        await self.sink.commit(manifest)
        return manifest.record

    def _resolved(self, outcome: Outcome) -> None:
        """The resolve is over: start fetching what the node lacks."""
        future = self.future
        if future.done():
            return
        if isinstance(outcome, RegistryError):
            future.set_exception(outcome)
            return
        store = self.store
        missing = store.missing_layers(outcome.layers)
        if not missing:
            self.complete = True
            future.set_result(outcome)
            return
        fetching = store.fetching
        if any(fetching(layer.digest) is not None for layer in missing):
            future.set_result(outcome)  # shares a fetch in flight: the coroutine steps
            return
        loop = future.get_loop()
        done: asyncio.Future[None] = loop.create_future()
        store.claim(missing, done)
        self._claimed = (missing, done)
        self.backend.begin_fetch(
            self.request, missing, lambda: self._fetched(outcome, missing), loop
        )

    def _fetched(self, manifest: Manifest, layers: list[Layer]) -> None:
        future = self.future
        try:
            self.store.add_layers(layers)
        except NoSpaceLeftError as exc:
            self._release()
            if not future.done():
                future.set_exception(no_space_error(exc, self.request.ref))
            return
        self._release()
        if not future.done():
            self.complete = True
            future.set_result(manifest)

    def _release(self) -> None:
        claimed = self._claimed
        if claimed is not None:
            self._claimed = None
            self.store.release(*claimed)

    def _abandon(self) -> None:
        """A cancelled pull stops its fetch and hands its layers back."""
        if self._claimed is not None:
            self.backend.cancel_fetch(self.request, self.future.get_loop())
            self._release()
