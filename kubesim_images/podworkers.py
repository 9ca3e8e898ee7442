"""Pod workers: one task per pod that syncs its images until every container can run.

As the kubelet's pod workers and `SyncPod`: a pod is synced the moment it is created; a sync walks
the init containers in order (each must have its image, and completes instantly in the
simulation, before the next; a sidecar, `restartPolicy: Always`, starts and keeps running, and
the next init container waits only for it to have started), then the app containers in order,
where a failure does not stop the later ones. A sync that leaves any container waiting is
retried after `errorRequeue` plus a seeded jitter (`wait.Jitter`). Within a pod, pulls are
strictly one after another because the sync awaits each. Container states carry the kubelet's
waiting reasons and messages; `initialized_condition` and `containers_ready_condition` give the
pod conditions the kubelet's status manager derives from them.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubesim_images import reasons
from kubesim_images.clock import LoopClock, sleep_ns, to_ns
from kubesim_images.errors import ContainerError
from kubesim_images.events import EventSink, container_event
from kubesim_images.fields import Fields
from kubesim_images.manager import ImageCredentials, ImageManager, PullNeeded
from kubesim_images.pod import Container, Pod
from kubesim_images.reasons import EventType, Reason
from kubesim_images.tasks import create_guarded_task


class State(enum.StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    TERMINATED = "terminated"


@dataclass(slots=True)
class ContainerStatus:
    container: Container
    state: State = State.WAITING
    reason: str = "ContainerCreating"
    message: str = ""
    image_id: str = ""
    pull_attempts: int = 0
    started_at: int | None = None  # loop ns
    restarts: int = 0

    def count_pull(self) -> None:
        self.pull_attempts += 1


@dataclass(slots=True)
class PodStatus:
    pod: Pod
    node: str
    created_at: int  # loop ns
    init_statuses: list[ContainerStatus] = field(default_factory=list)
    statuses: list[ContainerStatus] = field(default_factory=list)
    images_ready_at: int | None = None  # loop ns
    syncs: int = 0
    killed: bool = False  # deleted: its worker's context is cancelled (PodWorkers.kill)

    @property
    def ready(self) -> bool:
        return self.images_ready_at is not None

    def all_statuses(self) -> list[ContainerStatus]:
        return self.init_statuses + self.statuses


@dataclass(frozen=True, slots=True)
class SyncSettings:
    error_requeue_ns: int = 10_000_000_000
    jitter_factor: float = 0.5


def read_sync_settings(ctx: Fields, value: Any, path: str) -> SyncSettings:
    """A `sync:` section, for the daemon's config and scenario files alike (one reader, one
    set of texts). A zero requeue would resync a failing pod in a busy loop, so it is refused."""
    raw = ctx.mapping(value, path, {"errorRequeue", "jitterFactor"})
    settings = SyncSettings(
        error_requeue_ns=to_ns(
            ctx.duration(raw.get("errorRequeue", "10s"), f"{path}.errorRequeue")
        ),
        jitter_factor=ctx.number(
            raw.get("jitterFactor", 0.5), f"{path}.jitterFactor", low=0.0, high=10.0
        ),
    )
    if settings.error_requeue_ns <= 0:
        raise ctx.fail(f"{path}.errorRequeue", "must be positive")
    return settings


# A pod's credential providers (its pull secrets, then the node's config), or None: none.
CredentialLookup = Callable[[Pod], ImageCredentials | None]


class PodWorkers:
    def __init__(
        self,
        manager: ImageManager,
        events: EventSink,
        *,
        settings: SyncSettings | None = None,
        rng: random.Random | None = None,
        credentials: CredentialLookup | None = None,
        on_ready: Callable[[PodStatus], None] | None = None,
        on_change: Callable[[PodStatus], None] | None = None,
        on_sync: Callable[[PodStatus], None] | None = None,
    ) -> None:
        self.manager = manager
        self.events = events
        self.settings = settings or SyncSettings()
        self._rng = rng or random.Random(0)
        self._credentials = credentials
        self._on_ready = on_ready
        self._on_change = on_change
        # Called as each sync begins (the daemon records what the kubelet's SyncPod reports
        # beyond images; scenarios leave it unset).
        self._on_sync = on_sync
        self.pods: dict[str, PodStatus] = {}
        self._clock = LoopClock()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def add(self, pod: Pod, *, created_at: int | None = None) -> PodStatus:
        """Start a worker for a new pod; its first sync runs at once."""
        if pod.uid in self.pods:
            raise ValueError(f"pod {pod.key} ({pod.uid}) already has a worker")
        default_reason = "PodInitializing" if pod.init_containers else "ContainerCreating"
        status = PodStatus(
            pod=pod,
            node=self.manager.node,
            created_at=self._clock.now() if created_at is None else created_at,
            init_statuses=[ContainerStatus(c, reason=default_reason) for c in pod.init_containers],
            statuses=[ContainerStatus(c, reason=default_reason) for c in pod.containers],
        )
        self.pods[pod.uid] = status
        self.start(status)
        return status

    def start(self, status: PodStatus) -> None:
        """(Re)start the worker of a known pod, e.g. after a restart restored its status."""
        self.pods[status.pod.uid] = status
        if status.ready:
            return
        # Guarded: a worker that raises logs `task_crashed` at once instead of leaving its pod
        # Pending with nothing said until shutdown awaits it.
        self._tasks[status.pod.uid] = create_guarded_task(
            self._work(status),
            name=f"pod-worker:{status.pod.key}",
            node=self.manager.node,
            pod=status.pod.key,
        )

    def update(self, status: PodStatus, pod: Pod) -> list[Container]:
        """The pod's spec changed (only images may): as the kubelet's SyncPod does when a
        container's spec hash changes, a running container whose image changed is killed
        (Normal `Killing`, "Container app definition changed, will be restarted") and started
        again once its new image is ensured under its pull policy. A waiting container simply
        uses the new image at its next start; a completed init container is not re-run.

        The sync under way, if any, is cancelled and a new one starts at once, so no pull of
        the old image can mark the new container ready. Returns the restarted containers.
        """
        restarted: list[Container] = []
        changed_any = False
        pairs = [
            *zip(status.init_statuses, pod.init_containers, strict=True),
            *zip(status.statuses, pod.containers, strict=True),
        ]
        status.pod = pod
        for cs, container in pairs:
            changed = cs.container.image != container.image
            cs.container = container
            if not changed or cs.state is State.TERMINATED:
                continue
            changed_any = True
            if cs.state is State.RUNNING:
                restarted.append(container)
                cs.restarts += 1
                self.events.emit(
                    container_event(
                        self._clock.now(),
                        self.manager.node,
                        pod,
                        container,
                        EventType.NORMAL,
                        Reason.KILLING,
                        f"Container {container.name} definition changed, will be restarted",
                    )
                )
            cs.state, cs.reason, cs.message = State.WAITING, "ContainerCreating", ""
            cs.image_id, cs.started_at = "", None
        if changed_any:
            status.images_ready_at = None
            task = self._tasks.pop(pod.uid, None)
            if task is not None:
                task.cancel()
            self.start(status)
        self._changed(status)
        return restarted

    async def remove(self, uid: str) -> PodStatus | None:
        task = self._tasks.pop(uid, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return self.pods.pop(uid, None)

    async def kill(self, uid: str) -> PodStatus | None:
        """The pod was deleted, as the kubelet's pod worker handles it: its context is
        cancelled (a pull under way fails with `context canceled`), then each running
        container is stopped (Normal `Killing`, "Stopping container NAME"). The simulated
        containers exit on SIGTERM at once, so nothing waits out the grace period.
        """
        status = self.pods.get(uid)
        if status is None:
            return None
        status.killed = True
        await self.remove(uid)
        now = self._clock.now()
        sidecars = [cs for cs in status.init_statuses if cs.container.sidecar]
        # Apps first, then sidecars in reverse order, as the kubelet stops them.
        for cs in [*status.statuses, *reversed(sidecars)]:
            if cs.state is State.RUNNING:
                self.events.emit(
                    container_event(
                        now,
                        self.manager.node,
                        status.pod,
                        cs.container,
                        EventType.NORMAL,
                        Reason.KILLING,
                        reasons.stopping_container(cs.container.name),
                    )
                )
        return status

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _requeue_delay(self) -> int:
        # wait.Jitter: duration + time.Duration(rand.Float64() * maxFactor * float64(duration)),
        # the conversion truncating to whole nanoseconds.
        base = self.settings.error_requeue_ns
        factor = self.settings.jitter_factor
        return base + int(self._rng.random() * factor * base) if factor > 0 else base

    async def _work(self, status: PodStatus) -> None:
        try:
            # The requeue is a timer, not a poll of state another task sets.
            while not await self.sync(status):
                await sleep_ns(self._requeue_delay())
        finally:
            # `update` may already have replaced this task with the pod's next worker.
            if self._tasks.get(status.pod.uid) is asyncio.current_task():
                del self._tasks[status.pod.uid]

    async def sync(self, status: PodStatus) -> bool:
        """One sync; True when every container has its image (the pod can run)."""
        status.syncs += 1
        if self._on_sync is not None:
            self._on_sync(status)
        lookup = self._credentials
        credentials = lookup(status.pod) if lookup is not None else None
        for cs in status.init_statuses:
            if cs.state is not State.WAITING:
                continue
            done, reason = (
                (State.RUNNING, "") if cs.container.sidecar else (State.TERMINATED, "Completed")
            )
            if not await self._ensure(status, cs, credentials, done, reason):
                self._changed(status)
                return False
        ok = True
        for cs in status.statuses:
            if cs.state is State.WAITING:
                ok = await self._ensure(status, cs, credentials, State.RUNNING, "") and ok
        if ok:
            status.images_ready_at = self._clock.now()
            if self._on_ready is not None:
                self._on_ready(status)
        elif status.init_statuses:
            for cs in status.statuses:
                if cs.state is State.WAITING and cs.reason == "ContainerCreating":
                    cs.reason = "PodInitializing"
        self._changed(status)
        return ok

    def _changed(self, status: PodStatus) -> None:
        if self._on_change is not None:
            self._on_change(status)

    async def _ensure(
        self,
        status: PodStatus,
        cs: ContainerStatus,
        credentials: ImageCredentials | None,
        done: State,
        done_reason: str,
    ) -> bool:
        """EnsureImageExists for one container: True when its image is present. Only a pull
        suspends; every other outcome is decided synchronously (`ImageManager.decide`)."""
        try:
            step = self.manager.decide(status.pod, cs.container)
            if isinstance(step, PullNeeded):
                ensured = await self.manager.pull(
                    step,
                    credentials=credentials,
                    on_pulling=cs.count_pull,
                    killed=lambda: status.killed,
                )
            else:
                ensured = step
        except ContainerError as exc:
            cs.state, cs.reason, cs.message = State.WAITING, exc.reason, str(exc)
            self._emit_failed(status.pod, cs.container, exc.reason)
            return False
        cs.state, cs.reason, cs.message = done, done_reason, ""
        cs.image_id = ensured.image_id
        cs.started_at = self._clock.now()
        # Report each container as it becomes ready, not only at the end of the sync.
        self._changed(status)
        return True

    def _emit_failed(self, pod: Pod, container: Container, reason: str) -> None:
        # kuberuntime's startContainer: Warning Failed "Error: <reason>" after every failure.
        self.events.emit(
            container_event(
                self._clock.now(),
                self.manager.node,
                pod,
                container,
                EventType.WARNING,
                Reason.FAILED,
                reasons.container_error(reason),
            )
        )


def initialized_condition(status: PodStatus) -> tuple[bool, str]:
    """The Initialized condition and its message, as `GeneratePodInitializedCondition`: a regular
    init container counts once completed, a sidecar once started; the others are listed as
    `containers with incomplete status: [i1 i2]` (Go's `%s` of a string slice)."""
    if any(cs.state is State.RUNNING for cs in status.statuses):
        return True, ""  # a regular container has started: the pod was initialized
    incomplete = [
        cs.container.name
        for cs in status.init_statuses
        if cs.state is not (State.RUNNING if cs.container.sidecar else State.TERMINATED)
    ]
    if not incomplete:
        return True, ""
    return False, f"containers with incomplete status: [{' '.join(incomplete)}]"


def containers_ready_condition(status: PodStatus) -> tuple[bool, str]:
    """ContainersReady (and Ready) as `GenerateContainersReadyCondition`: sidecars first, then
    the app containers, each ready once running (no probes in the simulation)."""
    unready = [
        cs.container.name
        for cs in [*(c for c in status.init_statuses if c.container.sidecar), *status.statuses]
        if cs.state is not State.RUNNING
    ]
    if not unready:
        return True, ""
    return False, f"containers with unready status: [{' '.join(unready)}]"
