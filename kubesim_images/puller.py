"""The node's pull queue: serial, bounded parallel or unlimited, with the QPS token bucket.

Mirrors `throttled_puller.go` and `throttledImageService`: a pull waits for a slot first come
first served (one slot with `serializeImagePulls`, N with `maxParallelImagePulls`, none without
a limit), then takes a `registryPullQPS` token, failing at once with `pull QPS exceeded` when
there is none, then looks up the pod's credentials (`credentials`: pull secrets as they are
now, then the node's config, as kuberuntime's `PullImage`) and tries each in turn until one pull
succeeds; the pull itself is `pulling`'s. The pull duration the kubelet reports starts when the
slot is won; the wait before it is "including waiting".

A pull is one `PullEntry` driven by callbacks on the node's `Scheduler` (`begin`, then its
`done`); only a backend that does I/O, or a credential provider that must be awaited, runs as
an asyncio task, which calls back when done. `pull` awaits the whole, for asyncio callers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol, TypeGuard

from kubesim_images.clock import go_seconds
from kubesim_images.credentials import CredentialProvider
from kubesim_images.errors import PullQPSExceededError, RegistryError
from kubesim_images.keyring import Credential
from kubesim_images.kubeletconfig import KubeletConfig
from kubesim_images.logging import enabled, get_logger
from kubesim_images.pulling import CallbackPull, pull
from kubesim_images.reference import ImageReference
from kubesim_images.registry.base import (
    CallbackBackend,
    LayerSink,
    Manifest,
    Outcome,
    PullRequest,
    RegistryBackend,
)
from kubesim_images.scheduler import LoopScheduler, Scheduler, settles
from kubesim_images.store import ImageRecord, ImageStore
from kubesim_images.tasks import create_guarded_task


class TokenBucket:
    """golang.org/x/time/rate as `flowcontrol.NewTokenBucketRateLimiter`: starts full.

    As `Limiter.AllowN(now, 1)`: tokens grow by `elapsed.Seconds() * limit` with `elapsed` in
    whole nanoseconds and the limit a float32 (the kubelet passes `float32(registryPullQPS)`);
    a refused request leaves the bucket untouched, an accepted one moves `last` to `now`.
    """

    __slots__ = (
        "_last",
        "_limit",
        "_tokens",
        "burst",
        "qps",
    )

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


class Waiter(Protocol):
    def admit(self) -> None:
        """Called, holding a slot, when the waiter's turn comes."""


class FifoGate:
    """At most `limit` holders (None: unlimited); waiters are admitted in arrival order.

    A waiter is an object whose `admit` is called when its turn comes (`enqueue`), in the next
    turn (`call_soon`), as a task waiting on a future would be woken. The waiter itself is
    queued, not a callback: a node can have thousands waiting, and a bound method for each
    would be one more object per pull.
    """

    __slots__ = (
        "_scheduler",
        "_waiters",
        "holders",
        "limit",
    )

    def __init__(self, limit: int | None, scheduler: Scheduler | None = None) -> None:
        self.limit = limit
        self.holders = 0
        self._scheduler: Scheduler = LoopScheduler() if scheduler is None else scheduler
        self._waiters: deque[Waiter] = deque()

    def try_acquire(self) -> bool:
        """Take a slot now if one is free and nobody is ahead."""
        if self.limit is None or (self.holders < self.limit and not self._waiters):
            self.holders += 1
            return True
        return False

    def enqueue(self, waiter: Waiter) -> None:
        """Queue `waiter` to be admitted, holding a slot, when its turn comes (after
        `try_acquire` failed). The waiter owns the slot: it must `release` it."""
        self._waiters.append(waiter)

    def discard(self, waiter: Waiter) -> bool:
        """Withdraw a queued waiter; False when it was already handed its slot."""
        try:
            self._waiters.remove(waiter)
        except ValueError:
            return False
        return True

    def release(self) -> None:
        if self._waiters:
            # The slot passes directly to the next waiter.
            self._scheduler.call_soon(self._waiters.popleft().admit)
            return
        self.holders -= 1

    @property
    def waiting(self) -> int:
        return len(self._waiters)


# A named tuple's own constructor is a Python function around this one: the hot path calls it
# directly, with every field.
_tuple = tuple.__new__


class PullResult(NamedTuple):
    # A named tuple, not a frozen dataclass: made on every pull, five times faster.
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


class PullEntry(CallbackPull):
    """A pull the queue knows (what /debug/pulls and metrics show of it): waiting for its
    slot, then trying each credential in turn. `cancel` withdraws it (its slot, its fetch);
    `done` is then never called. One object per pull carries its whole way through the queue
    and, with a backend driven by callbacks, its attempts (`CallbackPull`): a scenario makes
    millions."""

    __slots__ = (
        "cancelled",
        "credentials",
        "done",
        "enqueued_at",
        "errors",
        "fast",
        "finished",
        "image",
        "index",
        "pod",
        "provider",
        "pull_id",
        "puller",
        "queued",
        "ref",
        "started_at",
        "task",
    )

    def __init__(
        self,
        puller: ImagePuller,
        image: str,
        ref: ImageReference,
        pod: str,
        provider: CredentialProvider | None,
        done: Callable[[PullResult | Exception], None] | None,
    ) -> None:
        scheduler = puller.scheduler
        CallbackPull.__init__(self, puller.store, scheduler)
        self.puller = puller
        self.pull_id = next(_pull_ids)
        self.image = image
        self.ref = ref
        self.pod = pod
        self.enqueued_at = scheduler.now_ns  # loop ns
        self.started_at: int | None = None
        self.provider = provider
        self.done = done
        self.fast = False
        self.queued = False  # waiting in the gate for its slot
        self.credentials: Sequence[Credential] = ()
        self.index = 0  # the credential being tried
        self.errors: list[RegistryError] | None = None  # of the credentials tried before
        self.task: asyncio.Task[None] | None = None
        self.cancelled = False
        self.finished = False

    def admit(self) -> None:
        """The gate's callback: the pull's slot has come."""
        self.puller.admitted(self)

    def attempt_over(self, outcome: Outcome) -> None:
        self.puller.attempted(self, outcome)

    def pull_over(self, result: PullResult | Exception) -> None:
        """The pull ended: its `PullResult`, or the error it failed with. A subclass that is
        its own caller (`manager.ManagedPull`) takes it here; else `done` does."""
        done = self.done
        assert done is not None  # noqa: S101 - a plain entry is made with its `done`
        done(result)

    def cancel(self) -> None:
        if self.cancelled or self.finished:
            return
        self.cancelled = True
        self.puller.withdraw(self)


_CALLBACK_TYPES: dict[type, bool] = {}


def _driven_by_callbacks(backend: RegistryBackend) -> TypeGuard[CallbackBackend]:
    """isinstance against the runtime protocol, once per backend type: the check walks the
    protocol's members, and every node of a large scenario asks it."""
    kind = type(backend)
    known = _CALLBACK_TYPES.get(kind)
    if known is None:
        known = _CALLBACK_TYPES[kind] = isinstance(backend, CallbackBackend)
    return known


class ImagePuller:
    __slots__ = (
        "_bucket",
        "_callbacks",
        "_gate",
        "_log_pulls",
        "backend",
        "config",
        "in_flight",
        "node",
        "scheduler",
        "sink",
        "store",
        "waiting",
    )

    def __init__(
        self,
        node: str,
        backend: RegistryBackend,
        store: ImageStore,
        config: KubeletConfig,
        sink: LayerSink | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.node = node
        self.backend = backend
        self.store = store
        self.sink = sink  # where a real backend writes the bytes it fetches
        self.config = config
        self.scheduler: Scheduler = LoopScheduler() if scheduler is None else scheduler
        self._gate = FifoGate(config.pull_concurrency, self.scheduler)
        self._bucket = (
            TokenBucket(config.registry_pull_qps, config.registry_burst)
            if config.registry_pull_qps > 0
            else None
        )
        self.waiting: dict[int, PullEntry] = {}
        self.in_flight: dict[int, PullEntry] = {}
        # Per-pull lines are built only when they will be written: this is the hot path, and
        # a large scenario builds 100,000 pullers, so the node's logger is bound only then.
        self._log_pulls = enabled(logging.INFO)
        # A backend driven by callbacks (the simulated registry, which writes into no sink)
        # needs no coroutine; any other pulls as a task on the loop.
        self._callbacks = backend if sink is None and _driven_by_callbacks(backend) else None

    def begin(
        self,
        ref: ImageReference,
        *,
        image: str,
        pod: str,
        credentials: CredentialProvider | None = None,
        done: Callable[[PullResult | Exception], None],
    ) -> PullEntry:
        """Queue a pull; `done` gets its `PullResult`, or the `RegistryError` or
        `PullQPSExceededError` it failed with. Called at once when the pull ends without
        waiting (a free slot, no latency, nothing to download), else from a later turn."""
        entry = PullEntry(self, image, ref, pod, credentials, done)
        self.enqueue(entry)
        return entry

    def enqueue(self, entry: PullEntry) -> None:
        """Queue a pull made by its caller (a `PullEntry` of this puller, made just now), as
        `begin` does; its `pull_over` gets the outcome."""
        credentials = entry.provider
        if self._callbacks is not None and self._bucket is None:
            # What a pull awaiting one future would be: woken once more after its slot comes.
            peek = credentials.ready(entry.ref) if credentials is not None else ()
            entry.fast = peek is not None and len(peek) <= 1
        if self._gate.try_acquire():
            self._admit(entry, queued=False)
        else:
            self.waiting[entry.pull_id] = entry
            entry.queued = True
            self._gate.enqueue(entry)

    async def pull(
        self,
        ref: ImageReference,
        *,
        image: str,
        pod: str,
        credentials: CredentialProvider | None = None,
    ) -> PullResult:
        """`begin`, awaited: for callers on an asyncio loop."""
        future: asyncio.Future[PullResult] = asyncio.get_running_loop().create_future()
        done = settles(future, Exception)
        entry = self.begin(ref, image=image, pod=pod, credentials=credentials, done=done)
        try:
            return await future
        except asyncio.CancelledError:
            entry.cancel()
            raise

    def withdraw(self, entry: PullEntry) -> None:
        """A cancelled pull: out of the queue, or its fetch stopped and its slot passed on."""
        if entry.queued:
            if self._gate.discard(entry):
                del self.waiting[entry.pull_id]  # never admitted: no slot to give back
            # Else its slot is on the way: `admitted` finds it cancelled and passes it on.
            return
        entry.stop_attempt()
        if entry.task is not None:
            entry.task.cancel()
        if entry.started_at is not None:
            self.in_flight.pop(entry.pull_id, None)
            self._gate.release()

    def admitted(self, entry: PullEntry) -> None:
        del self.waiting[entry.pull_id]
        entry.queued = False
        if entry.cancelled:  # cancelled while its slot was on the way
            self._gate.release()
            return
        self._admit(entry, queued=True)

    def _admit(self, entry: PullEntry, *, queued: bool) -> None:
        """The pull has its slot: a QPS token, then its credentials, looked up now, as
        kuberuntime's PullImage does."""
        started = entry.started_at = self.scheduler.now_ns
        if self._bucket is not None and not self._bucket.try_accept(started):
            self._end(entry, PullQPSExceededError())
            return
        self.in_flight[entry.pull_id] = entry
        provider = entry.provider
        credentials = provider.ready(entry.ref) if provider is not None else ()
        if credentials is None:
            # A provider that must be awaited (a plugin): only on an asyncio loop.
            entry.task = create_guarded_task(
                self._lookup_then_pull(entry), name=f"pull:{entry.pull_id}", node=self.node
            )
            return
        if self._log_pulls:
            self._log_started(entry, len(credentials))
        entry.credentials = credentials
        self._attempt(entry, waiting=queued and entry.fast)

    async def _lookup_then_pull(self, entry: PullEntry) -> None:
        provider = entry.provider
        assert provider is not None  # noqa: S101 - only a provider can make us wait
        credentials = await provider.provide(entry.ref)
        if entry.cancelled:
            return
        entry.task = None
        if self._log_pulls:
            self._log_started(entry, len(credentials))
        entry.credentials = credentials
        self._attempt(entry, waiting=False)

    def _attempt(self, entry: PullEntry, *, waiting: bool) -> None:
        """Try credential `entry.index` (or none); `attempted` takes its outcome."""
        credentials = entry.credentials
        credential = credentials[entry.index] if credentials else None
        request = _tuple(PullRequest, (entry.pull_id, self.node, entry.ref, credential))
        backend = self._callbacks
        if backend is None:
            entry.task = create_guarded_task(
                self._pull_task(entry, request), name=f"pull:{entry.pull_id}", node=self.node
            )
            return
        outcome = entry.start_attempt(backend, request, waiting=waiting)
        if outcome is not None:
            self.attempted(entry, outcome)

    async def _pull_task(self, entry: PullEntry, request: PullRequest) -> None:
        try:
            outcome: Outcome = Manifest(await pull(self.backend, self.store, self.sink, request))
        except RegistryError as exc:
            outcome = exc
        except Exception as exc:
            # A bug or a disk error: the slot is passed on and the caller told, then the
            # task's guard logs the crash.
            if not entry.cancelled:
                entry.task = None
                self._end(entry, exc)
            raise
        if not entry.cancelled:
            entry.task = None
            self.attempted(entry, outcome)

    def attempted(self, entry: PullEntry, outcome: Outcome) -> None:
        if not isinstance(outcome, RegistryError):
            self._end(entry, outcome.record)
            return
        error = _as_cri_client_error(outcome)
        credentials = entry.credentials
        if len(credentials) <= 1:
            self._end(entry, error)  # the common case: one attempt, its error as it is
            return
        errors = entry.errors
        if errors is None:
            errors = entry.errors = []
        errors.append(error)
        if entry.index + 1 < len(credentials):
            entry.index += 1
            self._attempt(entry, waiting=False)
            return
        distinct = list(dict.fromkeys(str(e) for e in errors))
        if len(distinct) == 1:
            # utilerrors.NewAggregate prints one distinct message as itself: the same error
            # once per credential reads as that error.
            self._end(entry, errors[-1])
            return
        # Otherwise "[err1, err2]"; the kubelet's evalCRIPullErr then judges the whole text,
        # which no longer starts with "RegistryUnavailable".
        self._end(entry, RegistryError("[" + ", ".join(distinct) + "]", code=errors[-1].code))

    def _end(self, entry: PullEntry, outcome: ImageRecord | Exception) -> None:
        """The pull is over: its image stored, its slot passed on, its caller told."""
        entry.finished = True
        result: PullResult | Exception
        try:
            if isinstance(outcome, ImageRecord):
                result = self._finished(entry, outcome)
            else:
                result = outcome
                if self._log_pulls and isinstance(outcome, RegistryError):
                    # An outcome the pod's events already record; a line per failure only
                    # when pulls are logged at all (the daemon), never a flood in a large
                    # scenario.
                    self._log_failed(entry, outcome)
        finally:
            # Whatever happened (a store that could not save), the slot is passed on.
            self.in_flight.pop(entry.pull_id, None)
            self._gate.release()
        entry.pull_over(result)

    def _log_started(self, entry: PullEntry, credentials: int) -> None:
        started = entry.started_at
        assert started is not None  # noqa: S101 - logged once the pull has its slot
        get_logger(node=self.node).info(
            "pull_started",
            pod=entry.pod,
            image=entry.image,
            pull_id=entry.pull_id,
            reference=entry.ref.pull_ref,
            credentials=credentials,
            queued_seconds=round((started - entry.enqueued_at) / 1e9, 3),
        )

    def _log_failed(self, entry: PullEntry, exc: RegistryError) -> None:
        get_logger(node=self.node).info(
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
        finished = self.scheduler.now_ns
        stored = self.store.add(record, entry.ref, finished)
        if self._log_pulls:
            get_logger(node=self.node).info(
                "pull_finished",
                pod=entry.pod,
                image=entry.image,
                pull_id=entry.pull_id,
                image_id=stored.id,
                size=stored.size,
                seconds=round((finished - started) / 1e9, 3),
            )
        return _tuple(PullResult, (stored, finished - started, started - entry.enqueued_at))

    def progress(self, pull_id: int) -> tuple[float, int] | None:
        return self.backend.progress(pull_id)
