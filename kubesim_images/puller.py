"""The node's pull queue: serial, bounded parallel or unlimited, with the QPS token bucket.

Mirrors `throttled_puller.go` and `throttledImageService`: a pull waits for a slot first come
first served (one slot with `serializeImagePulls`, N with `maxParallelImagePulls`, none without
a limit), then takes a `registryPullQPS` token, failing at once with `pull QPS exceeded` when
there is none, then looks up the pod's credentials (`credentials`: pull secrets as they are
now, then the node's config, as kuberuntime's `PullImage`) and tries each in turn until one pull
succeeds; the pull itself is `pulling`'s. The pull duration the kubelet reports starts when the
slot is won; the wait before it is "including waiting".
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import struct
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from kubesim_images.clock import LoopClock, go_seconds
from kubesim_images.credentials import CredentialProvider
from kubesim_images.errors import PullQPSExceededError, RegistryError
from kubesim_images.keyring import Credential
from kubesim_images.kubeletconfig import KubeletConfig
from kubesim_images.logging import get_logger
from kubesim_images.pulling import CallbackPull, pull
from kubesim_images.reference import ImageReference
from kubesim_images.registry.base import CallbackBackend, LayerSink, PullRequest, RegistryBackend
from kubesim_images.store import ImageRecord, ImageStore


class TokenBucket:
    """golang.org/x/time/rate as `flowcontrol.NewTokenBucketRateLimiter`: starts full.

    As `Limiter.AllowN(now, 1)`: tokens grow by `elapsed.Seconds() * limit` with `elapsed` in
    whole nanoseconds and the limit a float32 (the kubelet passes `float32(registryPullQPS)`);
    a refused request leaves the bucket untouched, an accepted one moves `last` to `now`.
    """

    def __init__(self, qps: float, burst: int, now: int = 0) -> None:
        self.qps = qps
        self.burst = burst
        self._limit = struct.unpack("f", struct.pack("f", qps))[0]
        self._tokens = float(burst)
        self._last = now

    def try_accept(self, now: int) -> bool:
        last = min(self._last, now)
        tokens = min(float(self.burst), self._tokens + go_seconds(now - last) * self._limit)
        tokens -= 1.0
        if tokens < 0:
            return False
        self._tokens = tokens
        self._last = now
        return True


class FifoGate:
    """At most `limit` holders (None: unlimited); waiters are admitted in arrival order.

    A waiter is a future (`acquire`) or a callback (`enqueue`): handing a slot resolves the
    future or schedules the callback, either way one turn of the loop later, at the same place
    in the loop's queue, so which kind waits changes nothing about the order things happen in.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.holders = 0
        self._waiters: deque[asyncio.Future[None] | Callable[[], None]] = deque()

    def try_acquire(self) -> bool:
        """Take a slot now if one is free and nobody is ahead; the hot path, no coroutine."""
        if self.limit is None or (self.holders < self.limit and not self._waiters):
            self.holders += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Admitted just as we were cancelled: pass the slot on.
                self.release()
            else:
                self._waiters.remove(future)
            raise

    def enqueue(self, admitted: Callable[[], None]) -> None:
        """Queue `admitted` to be called, holding a slot, when its turn comes (after
        `try_acquire` failed). The callback owns the slot: it must `release` it."""
        self._waiters.append(admitted)

    def discard(self, admitted: Callable[[], None]) -> bool:
        """Withdraw a queued callback; False when it was already handed its slot."""
        try:
            self._waiters.remove(admitted)
        except ValueError:
            return False
        return True

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if isinstance(waiter, asyncio.Future):
                if not waiter.done():
                    waiter.set_result(None)  # the slot passes directly to the next waiter
                    return
            else:
                asyncio.get_running_loop().call_soon(waiter)
                return
        self.holders -= 1

    @property
    def waiting(self) -> int:
        return len(self._waiters)


@dataclass(slots=True)
class PullEntry:
    """A pull known to the queue, for /debug/pulls and metrics."""

    pull_id: int
    image: str
    ref: ImageReference
    pod: str
    enqueued_at: int  # loop ns
    started_at: int | None = None


@dataclass(frozen=True, slots=True)
class PullResult:
    record: ImageRecord
    pull_ns: int  # from winning the slot to having the image
    waited_ns: int  # in the queue before that


_pull_ids = itertools.count(1)

# The 1.32 CRI client (remote_image.go) returns a gRPC status with code Unknown as its bare
# message, "since they add no value"; other codes keep their "rpc error: code = X desc = ".
_UNKNOWN_STATUS = "rpc error: code = Unknown desc = "


def _as_cri_client_error(exc: RegistryError) -> RegistryError:
    text = str(exc)
    if not text.startswith(_UNKNOWN_STATUS):
        return exc
    return RegistryError(
        text.removeprefix(_UNKNOWN_STATUS), code=exc.code, unavailable=exc.unavailable
    )


class _CredentialsChanged(Exception):
    """The one-suspension path cannot try the credentials found once admitted (several, or
    a provider that must be awaited): the pull goes on with the coroutine steps."""


async def _lookup(provider: CredentialProvider | None, ref: ImageReference) -> Sequence[Credential]:
    if provider is None:
        return ()
    found = provider.ready(ref)
    return found if found is not None else await provider.provide(ref)


class ImagePuller:
    def __init__(
        self,
        node: str,
        backend: RegistryBackend,
        store: ImageStore,
        config: KubeletConfig,
        sink: LayerSink | None = None,
    ) -> None:
        self.node = node
        self.backend = backend
        self.store = store
        self.sink = sink  # where a real backend writes the bytes it fetches
        self.config = config
        self._gate = FifoGate(config.pull_concurrency)
        self._bucket = (
            TokenBucket(config.registry_pull_qps, config.registry_burst)
            if config.registry_pull_qps > 0
            else None
        )
        self._clock = LoopClock()
        self.waiting: dict[int, PullEntry] = {}
        self.in_flight: dict[int, PullEntry] = {}
        self._log = get_logger(node=node)
        # Per-pull lines are built only when they will be written: this is the hot path.
        self._log_pulls = self._log.is_enabled_for(logging.INFO)
        # One suspension per pull when the backend can be started from a callback and no QPS
        # token is taken at the start (a refused token must fail the pull in its own task, at
        # the moment it would have started, as the general path does).
        self._round_trip = (
            backend if isinstance(backend, CallbackBackend) and self._bucket is None else None
        )

    def pull(
        self,
        ref: ImageReference,
        *,
        image: str,
        pod: str,
        credentials: CredentialProvider | None = None,
    ) -> Coroutine[Any, Any, PullResult]:
        """The pull, to await: queued, QPS-checked, then its credentials looked up and each
        tried in turn. A plain method returning the coroutine of the path taken, so a pull
        costs one coroutine less. The path is chosen by a peek at the credentials (one pull
        suspends once with at most one); those used are looked up again once admitted."""
        entry = PullEntry(next(_pull_ids), image, ref, pod, self._clock.now())
        if self._round_trip is not None:
            peek = credentials.ready(ref) if credentials is not None else ()
            if peek is not None and len(peek) <= 1:
                return self._pull_once(self._round_trip, entry, credentials)
        return self._pull_general(entry, credentials)

    async def _pull_general(
        self, entry: PullEntry, provider: CredentialProvider | None
    ) -> PullResult:
        now = self._clock.now
        if not self._gate.try_acquire():
            self.waiting[entry.pull_id] = entry
            try:
                await self._gate.acquire()
            finally:
                del self.waiting[entry.pull_id]
        try:
            started = entry.started_at = now()
            if self._bucket is not None and not self._bucket.try_accept(started):
                raise PullQPSExceededError
            self.in_flight[entry.pull_id] = entry
            credentials = await _lookup(provider, entry.ref)
            if self._log_pulls:
                self._log_started(entry, len(credentials))
            try:
                record = await self._pull_with_credentials(entry, credentials)
            except RegistryError as exc:
                # An outcome the pod's events already record; a line per failure only when
                # pulls are logged at all (the daemon), never a flood in a large scenario.
                if self._log_pulls:
                    self._log_failed(entry, exc)
                raise
            return self._finished(entry, record)
        finally:
            self.in_flight.pop(entry.pull_id, None)
            self._gate.release()

    async def _pull_once(
        self, backend: CallbackBackend, entry: PullEntry, provider: CredentialProvider | None
    ) -> PullResult:
        """The pull with one suspension: started at once when a slot is free, else by the
        queue's callback when it hands this pull its slot; then awaited to its end."""
        request = PullRequest(entry.pull_id, self.node, entry.ref)
        run = CallbackPull(backend, self.store, self.sink, request, asyncio.get_running_loop())
        admitted: Callable[[], None] | None = None
        if self._gate.try_acquire():
            self._start(entry, run, provider)
        else:
            self.waiting[entry.pull_id] = entry
            admitted = functools.partial(self._admitted, entry, run, provider)
            self._gate.enqueue(admitted)
        try:
            try:
                try:
                    record = await run.finish()
                except _CredentialsChanged:
                    # More credentials by the time the slot came: each is tried in turn.
                    credentials = await _lookup(provider, entry.ref)
                    if self._log_pulls:
                        self._log_started(entry, len(credentials))
                    record = await self._pull_with_credentials(entry, credentials)
            except asyncio.CancelledError:
                if admitted is not None and self._gate.discard(admitted):
                    del self.waiting[entry.pull_id]  # never admitted: no slot to give back
                # Admitted but not yet started: `_admitted` finds the future cancelled and
                # passes the slot on.
                raise
            except RegistryError as exc:
                if self._log_pulls:
                    self._log_failed(entry, exc)
                raise _as_cri_client_error(exc) from None
            return self._finished(entry, record)
        finally:
            if entry.started_at is not None:
                self.in_flight.pop(entry.pull_id, None)
                self._gate.release()

    def _admitted(
        self, entry: PullEntry, run: CallbackPull, provider: CredentialProvider | None
    ) -> None:
        del self.waiting[entry.pull_id]
        if run.future.done():  # cancelled while its slot was on the way
            self._gate.release()
            return
        self._start(entry, run, provider)

    def _start(
        self, entry: PullEntry, run: CallbackPull, provider: CredentialProvider | None
    ) -> None:
        entry.started_at = self._clock.now()
        self.in_flight[entry.pull_id] = entry
        # The credentials are looked up now the pull has its slot, as kuberuntime's PullImage.
        credentials = provider.ready(entry.ref) if provider is not None else ()
        if credentials is None or len(credentials) > 1:
            run.future.set_exception(_CredentialsChanged())
            return
        if credentials:
            run.request = PullRequest(entry.pull_id, self.node, entry.ref, credentials[0])
        if self._log_pulls:
            self._log_started(entry, len(credentials))
        try:
            run.begin()
        except Exception as exc:  # noqa: BLE001 - a bug: raised in the pulling task, not lost
            if not run.future.done():
                run.future.set_exception(exc)

    def _log_started(self, entry: PullEntry, credentials: int) -> None:
        started = entry.started_at
        assert started is not None  # noqa: S101 - logged once the pull has its slot
        self._log.info(
            "pull_started",
            pod=entry.pod,
            image=entry.image,
            pull_id=entry.pull_id,
            reference=entry.ref.pull_ref,
            credentials=credentials,
            queued_seconds=round((started - entry.enqueued_at) / 1e9, 3),
        )

    def _log_failed(self, entry: PullEntry, exc: RegistryError) -> None:
        self._log.info(
            "pull_failed",
            pod=entry.pod,
            image=entry.image,
            pull_id=entry.pull_id,
            error=str(exc),
            code=exc.code,
        )

    def _finished(self, entry: PullEntry, record: ImageRecord) -> PullResult:
        started = entry.started_at
        assert started is not None  # noqa: S101 - a finished pull was started
        finished = self._clock.now()
        stored = self.store.add(record, entry.ref, finished)
        if self._log_pulls:
            self._log.info(
                "pull_finished",
                pod=entry.pod,
                image=entry.image,
                pull_id=entry.pull_id,
                image_id=stored.id,
                size=stored.size,
                seconds=round((finished - started) / 1e9, 3),
            )
        return PullResult(stored, finished - started, started - entry.enqueued_at)

    async def _pull_with_credentials(
        self, entry: PullEntry, credentials: Sequence[Credential]
    ) -> ImageRecord:
        if len(credentials) <= 1:
            # The common case: one attempt, its error as it is.
            credential = credentials[0] if credentials else None
            try:
                return await pull(
                    self.backend,
                    self.store,
                    self.sink,
                    PullRequest(entry.pull_id, self.node, entry.ref, credential),
                )
            except RegistryError as exc:
                raise _as_cri_client_error(exc) from None
        attempts: Sequence[Credential | None] = credentials
        errors: list[RegistryError] = []
        for credential in attempts:
            try:
                return await pull(
                    self.backend,
                    self.store,
                    self.sink,
                    PullRequest(entry.pull_id, self.node, entry.ref, credential),
                )
            except RegistryError as exc:
                errors.append(_as_cri_client_error(exc))
        distinct = list(dict.fromkeys(str(e) for e in errors))
        if len(distinct) == 1:
            # utilerrors.NewAggregate prints one distinct message as itself: the same error
            # once per credential reads as that error.
            raise errors[-1]
        # Otherwise "[err1, err2]"; the kubelet's evalCRIPullErr then judges the whole text,
        # which no longer starts with "RegistryUnavailable".
        raise RegistryError("[" + ", ".join(distinct) + "]", code=errors[-1].code)

    def progress(self, pull_id: int) -> tuple[float, int] | None:
        return self.backend.progress(pull_id)
