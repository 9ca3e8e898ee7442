"""The image manager: the kubelet's `EnsureImageExists`, step for step.

For one container of one pod: parse the image (InspectFailed / InvalidImageName), ask the store
whether it is present, apply the pull policy (already present / ErrImageNeverPull), check the
back-off keyed `podUID_image` (BackOff / ImagePullBackOff), then pull through the queue
(Pulling, then Pulled with the kubelet's durations, or Failed and the next back-off step). Every
outcome emits the kubelet's event with its exact reason and text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kubesim_images import reasons
from kubesim_images.backoff import Backoff
from kubesim_images.clock import now_ns
from kubesim_images.errors import (
    ErrImageNeverPull,
    ErrImagePull,
    ImagePullBackOff,
    InvalidImageName,
    InvalidReferenceError,
    PullQPSExceededError,
    RegistryError,
    RegistryUnavailable,
)
from kubesim_images.events import EventSink, container_event
from kubesim_images.keyring import Credential
from kubesim_images.pod import Container, Pod
from kubesim_images.policy import Decision, PullPolicy, decide
from kubesim_images.puller import ImagePuller
from kubesim_images.reasons import EventType, Reason
from kubesim_images.reference import ImageReference, parse_normalized

# The credentials to try for an image, in order (pod secrets, then the node's config).
ImageCredentials = Callable[[ImageReference], Sequence[Credential]]


@dataclass(frozen=True, slots=True)
class Ensured:
    image_id: str
    pulled: bool  # a pull ran (policy Always or the image was absent)


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
        self._refs: dict[str, ImageReference | InvalidReferenceError] = {}
        # The last pull error per back-off key, appended to the ImagePullBackOff message so
        # `kubectl get pod -o yaml` says why (the kubelet's prevPullErrMsg, since 1.32).
        self._prev_error: dict[str, str] = {}

    def _emit(
        self, pod: Pod, container: Container, kind: EventType, reason: Reason, message: str
    ) -> None:
        self.events.emit(
            container_event(now_ns(), self.node, pod, container, kind, reason, message)
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
        # The kubelet counts every call once, as it returns, with what it learned by then.
        facts: list[bool | None] = [None, None]  # present_locally, pull_required
        try:
            return await self._ensure(pod, container, credentials, on_pulling, facts)
        finally:
            self.observer.ensure_request(
                present_locally=facts[0],
                pull_policy=container.pull_policy.value,
                pull_required=facts[1],
            )

    async def _ensure(
        self,
        pod: Pod,
        container: Container,
        credentials: ImageCredentials | None,
        on_pulling: Callable[[], None] | None,
        facts: list[bool | None],
    ) -> Ensured:
        loop = asyncio.get_running_loop()
        image = container.image
        try:
            ref = self.parse(image)
        except InvalidReferenceError as exc:
            message = reasons.inspect_failed(image, str(exc))
            self._emit(pod, container, EventType.WARNING, Reason.INSPECT_FAILED, message)
            raise InvalidImageName(message) from None

        present = self.store.lookup(ref)
        if container.pull_policy is not PullPolicy.ALWAYS:
            # Under Always the kubelet never asks whether the image is there.
            facts[0] = present is not None
        decision = decide(container.pull_policy, present is not None)
        if decision is Decision.ALREADY_PRESENT and present is not None:
            facts[1] = False
            self.store.touch(present.id, now_ns(loop))
            self._emit(
                pod, container, EventType.NORMAL, Reason.PULLED, reasons.already_present(image)
            )
            return Ensured(present.id, pulled=False)
        if decision is Decision.NEVER_PULL_ERROR:
            message = reasons.never_pull(image)
            self._emit(pod, container, EventType.WARNING, Reason.ERR_IMAGE_NEVER_PULL, message)
            raise ErrImageNeverPull(message)

        facts[1] = True
        key = f"{pod.uid}_{image}"
        started = now_ns(loop)
        if self.backoff.is_in_backoff_since_update(key, started):
            message = reasons.back_off(image)
            self._emit(pod, container, EventType.NORMAL, Reason.BACK_OFF, message)
            previous = self._prev_error.get(key)
            raise ImagePullBackOff(f"{message}: {previous}" if previous else message)
        self._prev_error.pop(key, None)

        self._emit(pod, container, EventType.NORMAL, Reason.PULLING, reasons.pulling(image))
        if on_pulling is not None:
            on_pulling()
        self.observer.pull_started(image)
        try:
            result = await self.puller.pull(
                ref,
                image=image,
                pod=pod.key,
                credentials=credentials(ref) if credentials is not None else (),
            )
        except (RegistryError, PullQPSExceededError) as exc:
            now = now_ns(loop)
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
            raise failure from None
        now = now_ns(loop)
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
        return Ensured(result.record.id, pulled=True)
