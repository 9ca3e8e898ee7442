"""The image manager: the kubelet's `EnsureImageExists`, step for step.

For one container of one pod: parse the image (InspectFailed / InvalidImageName), ask the store
whether it is present, apply the pull policy (already present / ErrImageNeverPull), check the
back-off keyed `podUID_image` (BackOff / ImagePullBackOff), then pull through the queue
(Pulling, then Pulled with the kubelet's durations, or Failed and the next back-off step). Every
outcome emits the kubelet's event with its exact reason and text.

Everything before the pull is one synchronous step (`decide`); the pull is started by
`begin_pull` and ends in a callback (`pulled`), with no coroutine, so the same steps run on the
daemon's loop and on a scenario's event core. `pull` and `ensure_image_exists` await them, for
callers on an asyncio loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from kubesim_images import reasons
from kubesim_images.backoff import Backoff
from kubesim_images.credentials import CredentialProvider
from kubesim_images.errors import (
    ContainerError,
    ErrImageNeverPull,
    ErrImagePull,
    ImagePullBackOff,
    InvalidImageName,
    InvalidReferenceError,
    PullQPSExceededError,
    RegistryError,
    RegistryUnavailable,
)
from kubesim_images.events import Event, EventSink
from kubesim_images.pod import Container, Pod
from kubesim_images.policy import Decision, PullPolicy, decide
from kubesim_images.puller import ImagePuller, PullEntry, PullResult
from kubesim_images.reasons import EventType, Reason
from kubesim_images.reference import ImageReference, parse_normalized
from kubesim_images.scheduler import settles

# The credentials to try for an image, in order (pod secrets, then the node's config), looked
# up by the puller once the pull has its slot.
ImageCredentials = CredentialProvider


# A named tuple's own constructor is a Python function (a lambda the class made) around this
# one; the hot path calls this directly, with every field, at a third of the cost.
_tuple = tuple.__new__

_V = TypeVar("_V")

# Enum members read on every pull, as module constants: CPython 3.11 does not specialise
# reading a member off its class (about 70 ns more than a global), and a pull reads a dozen.
_NORMAL = EventType.NORMAL
_PULLING = Reason.PULLING
_PULLED = Reason.PULLED
_ALWAYS = PullPolicy.ALWAYS
_ALREADY_PRESENT = Decision.ALREADY_PRESENT
_NEVER_PULL_ERROR = Decision.NEVER_PULL_ERROR


# What an image, as a pod writes it, always comes to, shared by every node of the process: the
# reference it parses to (or why it is none) and its Pulling and Pulled texts. Per node, 100,000
# nodes held 100,000 copies of the same few, and reading them missed the processor's caches.
# Bounded: the daemon's pods can name any number of images over its life.
_CACHE_LIMIT = 4096
_REFS: dict[str, ImageReference | str] = {}  # str: why it is not a reference
_TEXTS: dict[str, tuple[str, str]] = {}  # its Pulling text, the start of its Pulled texts


def _remember(cache: dict[str, _V], image: str, value: _V) -> _V:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[image] = value
    return value


# `policy.decide` for every policy and presence, looked up rather than called on every sync.
_DECISIONS = {
    policy: tuple(decide(policy, present) for present in (False, True)) for policy in PullPolicy
}


class Ensured(NamedTuple):
    # A named tuple, not a frozen dataclass: made on every pull, five times faster.
    image_id: str
    pulled: bool  # a pull ran (policy Always or the image was absent)


class PullNeeded(NamedTuple):
    """`ImageManager.decide`'s answer when the image must be pulled."""

    # A named tuple, not a frozen dataclass: made on every pull, five times faster.

    pod: Pod
    container: Container
    ref: ImageReference
    key: str  # back-off key, podUID_image
    present_locally: bool | None


class PullObserver:
    """Hooks for metrics; the default does nothing."""

    def pull_started(self, image: str) -> None:  # noqa: ARG002 - a no-op hook
        return None

    def ensure_request(
        self,
        *,
        present_locally: bool | None,  # noqa: ARG002 - a no-op hook
        pull_policy: str,  # noqa: ARG002
        pull_required: bool | None,  # noqa: ARG002
    ) -> None:
        return None

    def pull_finished(
        self,
        image: str,  # noqa: ARG002 - a no-op hook
        seconds: float,  # noqa: ARG002
        size: int,  # noqa: ARG002
        *,
        ok: bool,  # noqa: ARG002
    ) -> None:
        return None


class ManagedPull(PullEntry):
    """A pull `ImageManager.begin_pull` started, itself the queue's entry for it: `abandon`
    abandons it."""

    __slots__ = ("manager", "on_ensured", "over", "step")

    def __init__(
        self,
        manager: ImageManager,
        step: PullNeeded,
        credentials: ImageCredentials | None,
        done: Callable[[Ensured | ContainerError], None],
    ) -> None:
        PullEntry.__init__(
            self, manager.puller, step.container.image, step.ref, step.pod.key, credentials, None
        )
        self.manager = manager
        self.step = step
        self.on_ensured = done
        self.over = False  # pulled or abandoned

    def pull_over(self, result: PullResult | Exception) -> None:
        self.over = True
        self.manager.pulled(self, result)

    def abandon(self, *, killed: bool) -> None:
        if self.over:
            return
        self.over = True
        self.cancel()
        self.manager.abandoned(self, killed=killed)


class ImageManager:
    __slots__ = (
        "_counts_requests",
        "_prev_error",
        "_scheduler",
        "backoff",
        "events",
        "node",
        "observer",
        "puller",
        "store",
    )

    def __init__(
        self,
        node: str,
        puller: ImagePuller,
        backoff: Backoff,
        events: EventSink,
        observer: PullObserver | None = None,
    ) -> None:
        self.node = node
        self.puller = puller
        self.store = puller.store
        self.backoff = backoff
        self.events = events
        self.observer = observer or PullObserver()
        self._scheduler = puller.scheduler
        # The last pull error per back-off key, appended to the ImagePullBackOff message so
        # `kubectl get pod -o yaml` says why (the kubelet's prevPullErrMsg, since 1.32).
        self._prev_error: dict[str, str] = {}
        # The observer's calls a scenario's tally leaves as no-ops are not made at all.
        self._counts_requests = (
            type(self.observer).ensure_request is not PullObserver.ensure_request
        )

    def _emit(
        self, pod: Pod, container: Container, kind: EventType, reason: Reason, message: str
    ) -> None:
        # container_event's fields, built here: two events per pull.
        self.events.emit(
            _tuple(
                Event,
                (
                    self._scheduler.now_ns,
                    self.node,
                    pod.namespace,
                    pod.name,
                    pod.uid,
                    container.field_path,
                    kind,
                    reason,
                    message,
                    "Pod",
                    "kubelet",
                ),
            )
        )

    def parse(self, image: str) -> ImageReference:
        """`applyDefaultImageTag`, memoised: pods of one rollout share a handful of images."""
        cached = _REFS.get(image)
        if cached is None:
            try:
                parsed: ImageReference | str = parse_normalized(image).with_default_tag()
            except InvalidReferenceError as exc:
                parsed = str(exc)
            cached = _remember(_REFS, image, parsed)
        if isinstance(cached, str):
            # A new error each time: raising a kept one again would lengthen its traceback,
            # and keep the frames in it, at every sync of a pod with a bad reference.
            raise InvalidReferenceError(cached)
        return cached

    async def ensure_image_exists(
        self,
        pod: Pod,
        container: Container,
        *,
        credentials: ImageCredentials | None = None,
        on_pulling: Callable[[], None] | None = None,
    ) -> Ensured:
        """Make the container's image present or raise the kubelet's `ContainerError`."""
        step = self.decide(pod, container)
        if isinstance(step, Ensured):
            return step
        return await self.pull(step, credentials=credentials, on_pulling=on_pulling)

    def decide(self, pod: Pod, container: Container) -> Ensured | PullNeeded:
        """`EnsureImageExists` up to the pull, synchronously: parse, presence, policy, back-off.

        Returns the outcome when no pull is needed, raises the kubelet's `ContainerError`, or
        says which pull to run (`begin_pull` must then be called at once, as the kubelet goes
        straight on to pull). Most syncs of a rollout end here.
        """
        # The kubelet counts every call once, as it returns, with what it learned by then.
        present_locally: bool | None = None
        pull_required: bool | None = None
        image = container.image
        policy = container.pull_policy
        try:
            try:
                ref = _REFS.get(image)  # the common case, without a call
                if ref is None or isinstance(ref, str):
                    ref = self.parse(image)
            except InvalidReferenceError as exc:
                message = reasons.inspect_failed(image, str(exc))
                self._emit(pod, container, EventType.WARNING, Reason.INSPECT_FAILED, message)
                raise InvalidImageName(message) from None

            present = self.store.lookup(ref)
            if policy is not _ALWAYS:
                # Under Always the kubelet never asks whether the image is there.
                present_locally = present is not None
            decision = _DECISIONS[policy][present is not None]
            if decision is _ALREADY_PRESENT and present is not None:
                self.store.touch(present.id, self._scheduler.now_ns)
                self._emit(
                    pod, container, EventType.NORMAL, Reason.PULLED, reasons.already_present(image)
                )
                if self._counts_requests:
                    self.observer.ensure_request(
                        present_locally=present_locally,
                        pull_policy=policy.value,
                        pull_required=False,
                    )
                return _tuple(Ensured, (present.id, False))
            if decision is _NEVER_PULL_ERROR:
                message = reasons.never_pull(image)
                self._emit(pod, container, EventType.WARNING, Reason.ERR_IMAGE_NEVER_PULL, message)
                raise ErrImageNeverPull(message)

            pull_required = True
            key = f"{pod.uid}_{image}"
            backoff = self.backoff
            if backoff.keys and backoff.is_in_backoff_since_update(key, self._scheduler.now_ns):
                message = reasons.back_off(image)
                self._emit(pod, container, EventType.NORMAL, Reason.BACK_OFF, message)
                previous = self._prev_error.get(key)
                raise ImagePullBackOff(f"{message}: {previous}" if previous else message)
        except ContainerError:
            if self._counts_requests:
                self.observer.ensure_request(
                    present_locally=present_locally,
                    pull_policy=policy.value,
                    pull_required=pull_required,
                )
            raise
        return _tuple(PullNeeded, (pod, container, ref, key, present_locally))

    async def pull(
        self,
        step: PullNeeded,
        *,
        credentials: ImageCredentials | None = None,
        on_pulling: Callable[[], None] | None = None,
        killed: Callable[[], bool] | None = None,
    ) -> Ensured:
        """`begin_pull`, awaited: for callers on an asyncio loop. Cancelled, the pull is
        abandoned (`ManagedPull.abandon`), as killed when `killed()` says so."""
        future: asyncio.Future[Ensured] = asyncio.get_running_loop().create_future()
        done = settles(future, ContainerError)
        pull = self.begin_pull(step, credentials=credentials, on_pulling=on_pulling, done=done)
        try:
            return await future
        except asyncio.CancelledError:
            pull.abandon(killed=killed is not None and killed())
            raise

    def begin_pull(
        self,
        step: PullNeeded,
        *,
        credentials: ImageCredentials | None = None,
        on_pulling: Callable[[], None] | None = None,
        done: Callable[[Ensured | ContainerError], None],
    ) -> ManagedPull:
        """The pull `decide` asked for: Pulling, the queue, then Pulled or Failed and back-off;
        `done` gets the `Ensured` or the kubelet's `ContainerError` (at once when the pull
        ends without waiting, else from a later turn)."""
        image = step.container.image
        if self._prev_error:
            self._prev_error.pop(step.key, None)
        texts = _TEXTS.get(image)
        if texts is None:
            texts = _remember(_TEXTS, image, (reasons.pulling(image), reasons.pulled_prefix(image)))
        self._emit(step.pod, step.container, _NORMAL, _PULLING, texts[0])
        if on_pulling is not None:
            on_pulling()
        self.observer.pull_started(image)
        managed = ManagedPull(self, step, credentials, done)
        self.puller.enqueue(managed)
        return managed

    def pulled(self, managed: ManagedPull, outcome: PullResult | Exception) -> None:
        step = managed.step
        pod, container, key = step.pod, step.container, step.key
        image = container.image
        now = self._scheduler.now_ns
        if isinstance(outcome, PullResult):
            size = outcome.record.size
            total = now - managed.enqueued_at
            total -= total % 1_000_000  # reasons.truncate_ms_ns, inline: every pull
            self._emit(
                pod,
                container,
                _NORMAL,
                _PULLED,
                reasons.pulled_after(
                    # kept since the pull began, unless the cache was cleared meanwhile
                    texts[1] if (texts := _TEXTS.get(image)) else reasons.pulled_prefix(image),
                    outcome.pull_ns,
                    total,
                    size,
                ),
            )
            # The kubelet's histogram observes the time including the wait for a pull slot,
            # as truncated to the millisecond for the event.
            self.observer.pull_finished(image, total / 1e9, size, ok=True)
            if self.backoff.keys:
                for expired in self.backoff.gc(now):
                    self._prev_error.pop(expired, None)
            if self._counts_requests:
                self._ensured(step)
            managed.on_ensured(_tuple(Ensured, (outcome.record.id, True)))
            return
        if not isinstance(outcome, RegistryError | PullQPSExceededError):
            self._ensured(step)
            raise outcome  # a bug, not an outcome: the task or run it happened in ends
        self._emit(
            pod,
            container,
            EventType.WARNING,
            Reason.FAILED,
            reasons.failed_to_pull(image, str(outcome)),
        )
        self.backoff.next(key, now)
        self.observer.pull_finished(image, (now - managed.enqueued_at) / 1e9, 0, ok=False)
        failure: ErrImagePull | RegistryUnavailable
        if isinstance(outcome, RegistryError) and outcome.unavailable:
            detail = str(outcome).removeprefix("RegistryUnavailable").removeprefix(": ")
            failure = RegistryUnavailable(reasons.registry_unavailable(image, detail))
        else:
            failure = ErrImagePull(str(outcome))
        self._prev_error[key] = f"{failure.reason}: {failure}"
        self._ensured(step)
        managed.on_ensured(failure)

    def abandoned(self, managed: ManagedPull, *, killed: bool) -> None:
        """A pull whose pod worker stopped. Killed (the pod deleted), it ends as the kubelet's
        does when the pod worker's context is cancelled: the CRI pull fails with `context
        canceled`, so Warning Failed, back-off and a failed pull are recorded. Otherwise (the
        node stopping, the pod's spec changed) nothing is: the worker simply goes away."""
        step = managed.step
        if killed:
            now = self._scheduler.now_ns
            image = step.container.image
            error = reasons.failed_to_pull(image, reasons.CONTEXT_CANCELED)
            self._emit(step.pod, step.container, EventType.WARNING, Reason.FAILED, error)
            self.backoff.next(step.key, now)
            self.observer.pull_finished(image, (now - managed.enqueued_at) / 1e9, 0, ok=False)
        self._ensured(step)

    def _ensured(self, step: PullNeeded) -> None:
        if not self._counts_requests:
            return
        self.observer.ensure_request(
            present_locally=step.present_locally,
            pull_policy=step.container.pull_policy.value,
            pull_required=True,
        )
