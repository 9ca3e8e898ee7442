"""One pull against a backend, once it has its slot: resolve, what the node lacks, fetch, commit.

The backend only resolves and fetches (`registry.base`); this module decides which layers the
node's store lacks, shares a layer another pull on the node is already fetching (the store
knows which, as containerd's content store does: the second pull waits instead of downloading
it twice), and commits what arrived to the store - all or nothing, refused with containerd's
`no space left on device` when the image filesystem is full - and to the backend's sink.

A `CallbackBackend` with no sink (the simulated registry) is driven by callbacks through the
node's `Scheduler` (`CallbackPull`), with no coroutine at all: the same steps run on the daemon's
loop and on a scenario's lean event core. A backend that does I/O (a real registry writing into
a content store) runs as coroutines on an asyncio loop (`pull`, `fetch_missing`), which do the
same things in the same order.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

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
from kubesim_images.scheduler import Scheduler
from kubesim_images.store import FetchClaim, ImageRecord, ImageStore, Layer, NoSpaceLeftError


def no_space_error(exc: NoSpaceLeftError, ref: ImageReference) -> RegistryError:
    """containerd's pull error when the content store cannot write a fetched layer."""
    return RegistryError(failed_to_pull(ref, f"failed to copy: {exc}"), code=exc.code)


async def pull(
    backend: RegistryBackend, store: ImageStore, sink: LayerSink | None, request: PullRequest
) -> ImageRecord:
    """The whole pull as one coroutine, on an asyncio loop (a real registry, a content store
    to write into); raises `RegistryError`."""
    manifest = await backend.resolve(request)
    if sink is None:
        await fetch_missing(backend, store, sink, request, manifest, always=True)
        return manifest.record
    async with sink.leased(manifest):
        await fetch_missing(backend, store, sink, request, manifest, always=True)
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
            claim = store.claim(own)
            try:
                await backend.fetch(request, manifest, own, sink)
                try:
                    store.add_layers(own)
                except NoSpaceLeftError as exc:
                    raise no_space_error(exc, request.ref) from None
            finally:
                store.release(own, claim)
        for waited in waits:
            await _settled(waited)


async def _settled(claim: FetchClaim) -> None:
    """Wait for another pull's claim to settle (shielded: the claim is not ours to cancel)."""
    if claim.settled:
        return
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    claim.add_waiter(lambda: None if future.done() else future.set_result(None))
    await future


class CallbackPull:
    """A pull through a `CallbackBackend` with no sink, driven by callbacks: each attempt (one
    credential) is `start_attempt`, then `attempt_over` (the subclass's) is called once with
    the manifest or a `RegistryError`, unless `stop_attempt` came first. No coroutine, no
    future: a scenario's lean core runs it as the daemon's loop does.

    A base class: the pull queue's entry is one (`puller.PullEntry`), so that a pull is one
    object from the queue to the store. A large scenario has a million in flight, and every
    object a pull holds is read again when it resumes, long after it left the processor's
    caches.

    An attempt that ends within `start_attempt` (no latency, nothing to download) while the
    caller is not yet waiting is returned to it; otherwise `attempt_over` is called in the next
    turn (`call_soon`), as a task awaiting the pull would be woken. When another pull on the
    node is fetching some of the layers, this one waits for it, then looks again, as
    `fetch_missing` does.
    """

    __slots__ = (
        "_claimed",
        "_done",
        "_manifest",
        "backend",
        "outcome",
        "request",
        "scheduler",
        "store",
        "waiting",
    )

    def __init__(self, store: ImageStore, scheduler: Scheduler) -> None:
        self.store = store
        self.scheduler = scheduler
        self._done = True  # no attempt under way

    def start_attempt(
        self, backend: CallbackBackend, request: PullRequest, *, waiting: bool
    ) -> Outcome | None:
        """Begin an attempt; its outcome when it ended at once, else None (`attempt_over` will
        have it). `waiting`: the caller already waits (a queued pull, begun from the queue's
        callback), so even an end within this call is delivered in the next turn, as to a
        woken task."""
        self.backend = backend
        self.request = request
        self.waiting = waiting
        self.outcome: Outcome | None = None  # an end within this call, for the caller
        self._done = False
        self._claimed: tuple[list[Layer], FetchClaim] | None = None
        self._manifest: Manifest | None = None  # resolved, its missing layers being fetched
        backend.begin_resolve(request, self._resolved)
        outcome = self.outcome
        if outcome is None:
            self.waiting = True
        else:
            self.outcome = None
        return outcome

    def attempt_over(self, outcome: Outcome) -> None:
        """The attempt's outcome, when it did not end within `start_attempt`."""
        raise NotImplementedError

    def stop_attempt(self) -> None:
        """A cancelled pull stops its fetch and hands its layers back; `attempt_over` is not
        called."""
        if self._done:
            return
        self._done = True
        if self._claimed is not None:
            self.backend.cancel_fetch(self.request)
            self._release()

    def _end(self, outcome: Outcome) -> None:
        if self._done:
            return
        self._done = True
        if self.waiting:
            self.scheduler.call_soon(self.attempt_over, outcome)
        else:
            self.outcome = outcome

    def _resolved(self, outcome: Outcome) -> None:
        """The resolve is over: start fetching what the node lacks."""
        if self._done:
            return
        if isinstance(outcome, RegistryError):
            self._end(outcome)
            return
        store = self.store
        missing = store.missing_layers(outcome.record.layers)
        if not missing:
            self._end(outcome)
            return
        fetching = store.fetching
        if any(fetching(layer.digest) is not None for layer in missing):
            # Shares a fetch in flight: woken first (as a task would be), then the steps of
            # `fetch_missing`, each wait one turn later, as awaiting each would be.
            self._wake(self._share, outcome)
            return
        self._claimed = (missing, store.claim(missing))
        self._manifest = outcome
        self.backend.begin_fetch(self.request, missing, self._fetched)

    def _wake(self, step: Callable[[Manifest], None], manifest: Manifest) -> None:
        if self.waiting:
            self.scheduler.call_soon(step, manifest)
        else:
            self.waiting = True
            self.outcome = None
            step(manifest)

    def _fetched(self) -> None:
        manifest, claimed = self._manifest, self._claimed
        if manifest is None or claimed is None:  # cancelled: its fetch was stopped
            return
        try:
            self.store.add_layers(claimed[0])
        except NoSpaceLeftError as exc:
            self._release()
            self._end(no_space_error(exc, self.request.ref))
            return
        self._release()
        self._end(manifest)

    def _release(self) -> None:
        claimed = self._claimed
        if claimed is not None:
            self._claimed = None
            self.store.release(*claimed)

    # -- sharing layers another pull is fetching (`fetch_missing`, step by step) ---------------

    def _share(self, manifest: Manifest) -> None:
        if self._done:
            return
        store = self.store
        missing = store.missing_layers(manifest.layers)
        if not missing:
            self._finish(manifest)
            return
        own = [layer for layer in missing if store.fetching(layer.digest) is None]
        waits = [c for layer in missing if (c := store.fetching(layer.digest)) is not None]
        if not own:
            self._await_claims(manifest, waits)
            return
        claim = store.claim(own)
        self._claimed = (own, claim)
        inside = [True]

        def arrived() -> None:
            if inside[0]:  # nothing to download: no wait
                self._own_fetched(manifest, own, waits)
            else:
                self.scheduler.call_soon(self._own_fetched, manifest, own, waits)

        self.backend.begin_fetch(self.request, own, arrived)
        inside[0] = False

    def _own_fetched(self, manifest: Manifest, own: list[Layer], waits: list[FetchClaim]) -> None:
        if self._done:
            return
        try:
            self.store.add_layers(own)
        except NoSpaceLeftError as exc:
            self._release()
            self._finish(no_space_error(exc, self.request.ref))
            return
        self._release()
        self._await_claims(manifest, waits)

    def _await_claims(self, manifest: Manifest, waits: list[FetchClaim]) -> None:
        if self._done:
            return
        for index, claim in enumerate(waits):
            if not claim.settled:
                # Two turns, as `await asyncio.shield(future)` takes once the future settles.
                claim.add_waiter(
                    functools.partial(
                        self.scheduler.call_soon,
                        self.scheduler.call_soon,
                        self._await_claims,
                        manifest,
                        waits[index + 1 :],
                    )
                )
                return
        self._share(manifest)

    def _finish(self, outcome: Outcome) -> None:
        """The end of the sharing steps, which run as the woken caller: delivered now."""
        if self._done:
            return
        self._done = True
        self.attempt_over(outcome)
