"""The image manager: the kubelet's `EnsureImageExists`, step for step.

For one container of one pod: parse the image (InspectFailed / InvalidImageName), ask the store
whether it is present, apply the pull policy (already present / ErrImageNeverPull), check the
back-off keyed `podUID_image` (BackOff / ImagePullBackOff), then pull through the queue
(Pulling, then Pulled with the kubelet's durations, or Failed and the next back-off step). Every
outcome emits the kubelet's event with its exact reason and text.

Everything before the pull is one synchronous step (`decide`), the pull the only awaited one
(`pull`): most syncs of a large rollout find the image present or in back-off, and then cost a
method call, not a chain of coroutines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from kubesim_images import reasons
from kubesim_images.backoff import Backoff
from kubesim_images.clock import LoopClock
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
from kubesim_images.puller import ImagePuller
from kubesim_images.reasons import EventType, Reason
from kubesim_images.reference import ImageReference, parse_normalized

# The credentials to try for an image, in order (pod secrets, then the node's config), looked
# up by the puller once the pull has its slot.
ImageCredentials = CredentialProvider


@dataclass(frozen=True, slots=True)
class Ensured:
    image_id: str
    pulled: bool  # a pull ran (policy Always or the image was absent)


@dataclass(frozen=True, slots=True)
class PullNeeded:
    """`ImageManager.decide`'s answer when the image must be pulled."""

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


class ImageManager:
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
        self._clock = LoopClock()
        self._refs: dict[str, ImageReference | InvalidReferenceError] = {}
        # The last pull error per back-off key, appended to the ImagePullBackOff message so
        # `kubectl get pod -o yaml` says why (the kubelet's prevPullErrMsg, since 1.32).
        self._prev_error: dict[str, str] = {}
        self._pulling: dict[str, str] = {}  # image -> its Pulling text, the same every pull

    def _emit(
        self, pod: Pod, container: Container, kind: EventType, reason: Reason, message: str
    ) -> None:
        # container_event's fields, built here: two events per pull.
        self.events.emit(
            Event(
                self._clock.now(),
                self.node,
                pod.namespace,
                pod.name,
                pod.uid,
                container.field_path,
                kind,
                reason,
                message,
            )
        )

    def parse(self, image: str) -> ImageReference:
        """`applyDefaultImageTag`, memoised: pods of one rollout share a handful of images."""
        cached = self._refs.get(image)
        if cached is None:
            try:
                cached = parse_normalized(image).with_default_tag()
            except InvalidReferenceError as exc:
                cached = exc
            self._refs[image] = cached
        if isinstance(cached, InvalidReferenceError):
            raise cached
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
        says which pull to run (`pull` must then be awaited at once, as the kubelet goes
        straight on to pull). Most syncs of a rollout end here, so they cost no coroutine.
        """
        # The kubelet counts every call once, as it returns, with what it learned by then.
        present_locally: bool | None = None
        pull_required: bool | None = None
        image = container.image
        policy = container.pull_policy
        try:
            try:
                ref = self.parse(image)
            except InvalidReferenceError as exc:
                message = reasons.inspect_failed(image, str(exc))
                self._emit(pod, container, EventType.WARNING, Reason.INSPECT_FAILED, message)
                raise InvalidImageName(message) from None

            present = self.store.lookup(ref)
            if policy is not PullPolicy.ALWAYS:
                # Under Always the kubelet never asks whether the image is there.
                present_locally = present is not None
            decision = decide(policy, present is not None)
            if decision is Decision.ALREADY_PRESENT and present is not None:
                self.store.touch(present.id, self._clock.now())
                self._emit(
                    pod, container, EventType.NORMAL, Reason.PULLED, reasons.already_present(image)
                )
                self.observer.ensure_request(
                    present_locally=present_locally, pull_policy=policy.value, pull_required=False
                )
                return Ensured(present.id, pulled=False)
            if decision is Decision.NEVER_PULL_ERROR:
                message = reasons.never_pull(image)
                self._emit(pod, container, EventType.WARNING, Reason.ERR_IMAGE_NEVER_PULL, message)
                raise ErrImageNeverPull(message)

            pull_required = True
            key = f"{pod.uid}_{image}"
            if self.backoff.is_in_backoff_since_update(key, self._clock.now()):
                message = reasons.back_off(image)
                self._emit(pod, container, EventType.NORMAL, Reason.BACK_OFF, message)
                previous = self._prev_error.get(key)
                raise ImagePullBackOff(f"{message}: {previous}" if previous else message)
        except ContainerError:
            self.observer.ensure_request(
                present_locally=present_locally,
                pull_policy=policy.value,
                pull_required=pull_required,
            )
            raise
        return PullNeeded(pod, container, ref, key, present_locally)

    async def pull(
        self,
        step: PullNeeded,
        *,
        credentials: ImageCredentials | None = None,
        on_pulling: Callable[[], None] | None = None,
        killed: Callable[[], bool] | None = None,
    ) -> Ensured:
        """The pull `decide` asked for: Pulling, the queue, then Pulled or Failed and back-off.

        A pull cancelled because its pod was killed (`killed()` true) ends as the kubelet's
        does when the pod worker's context is cancelled: the CRI pull fails with `context
        canceled`, so Warning Failed, back-off and a failed pull are recorded. Any other
        cancellation (the node stopping) records nothing: the process is going away.
        """
        pod, container, ref, key = step.pod, step.container, step.ref, step.key
        image = container.image
        if self._prev_error:
            self._prev_error.pop(key, None)
        started = self._clock.now()
        pulling = self._pulling.get(image)
        if pulling is None:
            pulling = self._pulling[image] = reasons.pulling(image)
        self._emit(pod, container, EventType.NORMAL, Reason.PULLING, pulling)
        if on_pulling is not None:
            on_pulling()
        self.observer.pull_started(image)
        try:
            result = await self.puller.pull(
                ref,
                image=image,
                pod=pod.key,
                credentials=credentials,
            )
        except (RegistryError, PullQPSExceededError) as exc:
            now = self._clock.now()
            self._emit(
                pod,
                container,
                EventType.WARNING,
                Reason.FAILED,
                reasons.failed_to_pull(image, str(exc)),
            )
            self.backoff.next(key, now)
            self.observer.pull_finished(image, (now - started) / 1e9, 0, ok=False)
            failure: ErrImagePull | RegistryUnavailable
            if isinstance(exc, RegistryError) and exc.unavailable:
                detail = str(exc).removeprefix("RegistryUnavailable").removeprefix(": ")
                failure = RegistryUnavailable(reasons.registry_unavailable(image, detail))
            else:
                failure = ErrImagePull(str(exc))
            self._prev_error[key] = f"{failure.reason}: {failure}"
            self._ensured(step)
            raise failure from None
        except asyncio.CancelledError:
            if killed is not None and killed():
                now = self._clock.now()
                error = reasons.failed_to_pull(image, reasons.CONTEXT_CANCELED)
                self._emit(pod, container, EventType.WARNING, Reason.FAILED, error)
                self.backoff.next(key, now)
                self.observer.pull_finished(image, (now - started) / 1e9, 0, ok=False)
            self._ensured(step)
            raise
        except BaseException:
            self._ensured(step)
            raise
        now = self._clock.now()
        size = result.record.size
        total = reasons.truncate_ms_ns(now - started)
        self._emit(
            pod,
            container,
            EventType.NORMAL,
            Reason.PULLED,
            reasons.pulled(image, result.pull_ns, total, size),
        )
        # The kubelet's histogram observes the time including the wait for a pull slot, as
        # truncated to the millisecond for the event.
        self.observer.pull_finished(image, total / 1e9, size, ok=True)
        for expired in self.backoff.gc(now):
            self._prev_error.pop(expired, None)
        self._ensured(step)
        return Ensured(result.record.id, pulled=True)

    def _ensured(self, step: PullNeeded) -> None:
        self.observer.ensure_request(
            present_locally=step.present_locally,
            pull_policy=step.container.pull_policy.value,
            pull_required=True,
        )
