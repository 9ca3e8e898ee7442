"""Pod workers: one worker per pod that syncs its images until every container can run.

As the kubelet's pod workers and `SyncPod`: a pod is synced the moment it is created; a sync walks
the init containers in order (each must have its image, and completes instantly in the
simulation, before the next; a sidecar, `restartPolicy: Always`, starts and keeps running, and
the next init container waits only for it to have started), then the app containers in order,
where a failure does not stop the later ones. A sync that leaves any container waiting is
retried after `errorRequeue` plus a seeded jitter (`wait.Jitter`). Within a pod, pulls are
strictly one after another because the sync waits for each. Container states carry the kubelet's
waiting reasons and messages; `initialized_condition` and `containers_ready_condition` give the
pod conditions the kubelet's status manager derives from them.

A worker is not a task: a sync is synchronous steps on the node's `Scheduler`, suspended where
it waits for a pull (`ImageManager.begin_pull` calls it back) and between syncs (a timer), so a
million pods waiting in pull queues are a million small objects, not coroutine chains. Where an
asyncio task would be woken in the next turn of the loop (after a pull, a requeue), the step is
run in the next turn (`call_soon`), so the order of same-instant events is that of the tasks.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubesim_images import reasons
from kubesim_images.clock import to_ns
from kubesim_images.errors import ContainerError
from kubesim_images.events import EventSink, container_event
from kubesim_images.fields import Fields
from kubesim_images.logging import get_logger
from kubesim_images.manager import Ensured, ImageCredentials, ImageManager, ManagedPull, PullNeeded
from kubesim_images.pod import Container, Pod
from kubesim_images.reasons import EventType, Reason
from kubesim_images.scheduler import Scheduler, Timer


class State(enum.StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    TERMINATED = "terminated"


# Read on every sync of every container, as module constants: CPython 3.11 does not specialise
# reading an enum member off its class (about 70 ns more than a global).
_WAITING = State.WAITING
_RUNNING = State.RUNNING


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


class _Worker:
    """One pod's worker: where its sync stands (which container, whether every app container
    got its image so far), the pull it waits for, and its requeue timer. A worker that is
    stopped (`dead`) ignores whatever callback still reaches it."""

    __slots__ = (
        "begun",
        "container",
        "credentials",
        "dead",
        "index",
        "ok",
        "outcome",
        "pull",
        "reason",
        "state",
        "status",
        "timer",
        "workers",
    )

    def __init__(self, workers: PodWorkers, status: PodStatus) -> None:
        self.workers = workers
        self.status = status
        self.dead = False
        self.credentials: ImageCredentials | None = None
        self.index = 0  # the next container to walk: init containers, then app containers
        self.ok = True
        self.timer: Timer | None = None
        # The pull waited for: its container and the state the container gets with its image.
        self.pull: ManagedPull | None = None
        self.container: ContainerStatus | None = None
        self.state = _RUNNING
        self.reason = ""
        self.begun = False  # within `begin_pull`: an outcome then is taken at once
        self.outcome: Ensured | ContainerError | None = None

    def pulled(self, outcome: Ensured | ContainerError) -> None:
        if self.begun:
            self.outcome = outcome
        else:
            self.workers.pulled(self, outcome)


class PodWorkers:
    __slots__ = (
        "_credentials",
        "_holders",
        "_on_change",
        "_on_ready",
        "_on_sync",
        "_rng",
        "_scheduler",
        "_workers",
        "events",
        "images_version",
        "manager",
        "pods",
        "settings",
    )

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
        # Bumped whenever the images the pods' containers run may have changed: image GC
        # reads them every 5 minutes on every node, and most periods nothing changed.
        self.images_version = 0
        # Image id -> how many of the pods' containers hold it (started ones, exited init
        # containers too): kept as they change, so reading the images in use is not a walk
        # over every container of every pod.
        self._holders: dict[str, int] = {}
        self._scheduler: Scheduler = manager.puller.scheduler
        self._workers: dict[str, _Worker] = {}

    def add(self, pod: Pod, *, created_at: int | None = None) -> PodStatus:
        """Start a worker for a new pod; its first sync runs in the next turn."""
        if pod.uid in self.pods:
            raise ValueError(f"pod {pod.key} ({pod.uid}) already has a worker")
        default_reason = "PodInitializing" if pod.init_containers else "ContainerCreating"
        waiting = _WAITING
        status = PodStatus(  # positional: a rollout makes a million
            pod,
            self.manager.node,
            self._scheduler.now_ns if created_at is None else created_at,
            [ContainerStatus(c, waiting, default_reason) for c in pod.init_containers],
            [ContainerStatus(c, waiting, default_reason) for c in pod.containers],
        )
        # `start`, for a pod new to the node: none of its containers holds an image yet.
        self.pods[pod.uid] = status
        self.images_version += 1
        worker = self._workers[pod.uid] = _Worker(self, status)
        self._scheduler.call_soon(self._sync, worker)
        return status

    def start(self, status: PodStatus) -> None:
        """(Re)start the worker of a known pod, e.g. after a restart restored its status."""
        previous = self.pods.get(status.pod.uid)
        if previous is not status:
            if previous is not None:
                self._let_go(previous)
            self._hold(status)
        self.pods[status.pod.uid] = status
        self.images_version += 1
        if status.ready:
            return
        worker = self._workers[status.pod.uid] = _Worker(self, status)
        self._scheduler.call_soon(self._sync, worker)

    def update(self, status: PodStatus, pod: Pod) -> list[Container]:
        """The pod's spec changed (only images may): as the kubelet's SyncPod does when a
        container's spec hash changes, a running container whose image changed is killed
        (Normal `Killing`, "Container app definition changed, will be restarted") and started
        again once its new image is ensured under its pull policy. A waiting container simply
        uses the new image at its next start; a completed init container is not re-run.

        The sync under way, if any, is stopped and a new one starts, so no pull of the old
        image can mark the new container ready. Returns the restarted containers.
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
                        self._scheduler.now_ns,
                        self.manager.node,
                        pod,
                        container,
                        EventType.NORMAL,
                        Reason.KILLING,
                        f"Container {container.name} definition changed, will be restarted",
                    )
                )
            cs.state, cs.reason, cs.message = State.WAITING, "ContainerCreating", ""
            if cs.image_id:
                self._drop(cs.image_id)
            cs.image_id, cs.started_at = "", None
        if changed_any:
            self.images_version += 1
            status.images_ready_at = None
            self._stop_worker(pod.uid, killed=False)
            self.start(status)
        self._changed(status)
        return restarted

    def discard(self, uid: str) -> PodStatus | None:
        """Forget a pod: its worker stops (a pull under way is abandoned, unrecorded)."""
        self._stop_worker(uid, killed=False)
        self.images_version += 1
        status = self.pods.pop(uid, None)
        if status is not None:
            self._let_go(status)
        return status

    async def remove(self, uid: str) -> PodStatus | None:
        return self.discard(uid)

    def kill_now(self, uid: str) -> PodStatus | None:
        """The pod was deleted, as the kubelet's pod worker handles it: its context is
        cancelled (a pull under way fails with `context canceled`), then each running
        container is stopped (Normal `Killing`, "Stopping container NAME"). The simulated
        containers exit on SIGTERM at once, so nothing waits out the grace period.
        """
        status = self.pods.get(uid)
        if status is None:
            return None
        status.killed = True
        self._stop_worker(uid, killed=True)
        self.pods.pop(uid, None)
        self._let_go(status)
        self.images_version += 1
        now = self._scheduler.now_ns
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

    async def kill(self, uid: str) -> PodStatus | None:
        return self.kill_now(uid)

    def images_in_use(self) -> set[str]:
        """The image ids the pods' containers hold (a new set)."""
        return set(self._holders)

    def _hold(self, status: PodStatus) -> None:
        holders = self._holders
        for statuses in (status.init_statuses, status.statuses):
            for cs in statuses:
                if cs.image_id:
                    holders[cs.image_id] = holders.get(cs.image_id, 0) + 1

    def _let_go(self, status: PodStatus) -> None:
        for statuses in (status.init_statuses, status.statuses):
            for cs in statuses:
                if cs.image_id:
                    self._drop(cs.image_id)

    def _drop(self, image_id: str) -> None:
        left = self._holders[image_id] - 1
        if left:
            self._holders[image_id] = left
        else:
            del self._holders[image_id]

    def halt(self) -> None:
        """Stop every worker (the node is stopping): nothing more is synced or recorded."""
        for uid in list(self._workers):
            self._stop_worker(uid, killed=False)

    async def stop(self) -> None:
        self.halt()

    def _stop_worker(self, uid: str, *, killed: bool) -> None:
        worker = self._workers.pop(uid, None)
        if worker is None:
            return
        worker.dead = True
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None
        pull = worker.pull
        if pull is not None:
            worker.pull = None
            pull.abandon(killed=killed)

    def _requeue_delay(self) -> int:
        # wait.Jitter: duration + time.Duration(rand.Float64() * maxFactor * float64(duration)),
        # the conversion truncating to whole nanoseconds.
        base = self.settings.error_requeue_ns
        factor = self.settings.jitter_factor
        return base + int(self._rng.random() * factor * base) if factor > 0 else base

    # -- one sync, step by step -------------------------------------------------------------

    def _sync(self, worker: _Worker) -> None:
        """A sync begins: every container in turn (`_walk`) until one must wait for a pull."""
        if worker.dead:
            return
        worker.timer = None
        status = worker.status
        status.syncs += 1
        try:
            if self._on_sync is not None:
                self._on_sync(status)
            lookup = self._credentials
            worker.credentials = lookup(status.pod) if lookup is not None else None
            worker.index = 0
            worker.ok = True
            self._walk(worker)
        except Exception as exc:  # noqa: BLE001 - the guard: a crash is logged, never silent
            self._crashed(worker, exc)

    def _walk(self, worker: _Worker) -> None:
        """EnsureImageExists for each waiting container from `worker.index` on: init
        containers in order (the first without its image ends the sync), then the app
        containers (a failure does not stop the later ones). Returns when a pull must be
        waited for; `_pulled` walks on from there."""
        status = worker.status
        inits = status.init_statuses
        apps = status.statuses
        n_init = len(inits)
        total = n_init + len(apps)
        while worker.index < total:
            index = worker.index
            worker.index = index + 1
            if index < n_init:
                cs = inits[index]
                if cs.state is not _WAITING:
                    continue
                if cs.container.sidecar:
                    ensured = self._ensure(worker, cs, State.RUNNING, "")
                else:
                    ensured = self._ensure(worker, cs, State.TERMINATED, "Completed")
                if ensured is None:
                    return
                if not ensured:
                    self._changed(status)
                    self._requeue(worker)
                    return
            else:
                cs = apps[index - n_init]
                if cs.state is _WAITING:
                    ensured = self._ensure(worker, cs, _RUNNING, "")
                    if ensured is None:
                        return
                    worker.ok = ensured and worker.ok
        self._synced(worker)

    def _ensure(
        self, worker: _Worker, cs: ContainerStatus, done: State, done_reason: str
    ) -> bool | None:
        """EnsureImageExists for one container: True when its image is present, False when
        not, None when a pull must be waited for. Only a pull waits; every other outcome is
        decided at once (`ImageManager.decide`)."""
        status = worker.status
        try:
            step = self.manager.decide(status.pod, cs.container)
        except ContainerError as exc:
            self._failed(status, cs, exc)
            return False
        if isinstance(step, PullNeeded):
            worker.container, worker.state, worker.reason = cs, done, done_reason
            worker.begun = True
            cs.pull_attempts += 1  # counted as the pull begins, before any outcome
            worker.pull = self.manager.begin_pull(
                step, credentials=worker.credentials, done=worker.pulled
            )
            worker.begun = False
            outcome = worker.outcome
            if outcome is None:  # waits: `pulled` takes the outcome from a later turn
                return None
            worker.outcome = worker.pull = worker.container = None
            if isinstance(outcome, ContainerError):
                self._failed(status, cs, outcome)
                return False
            self._started(status, cs, outcome, done, done_reason)
            return True
        self._started(status, cs, step, done, done_reason)
        return True

    def pulled(self, worker: _Worker, outcome: Ensured | ContainerError) -> None:
        """A pull the sync waited for ended: the sync walks on."""
        if worker.dead:
            return
        cs = worker.container
        assert cs is not None  # noqa: S101 - set with the pull
        worker.pull = worker.container = None
        status = worker.status
        try:
            if isinstance(outcome, ContainerError):
                self._failed(status, cs, outcome)
                if worker.index <= len(status.init_statuses):
                    self._changed(status)
                    self._requeue(worker)
                    return
                worker.ok = False
            else:
                self._started(status, cs, outcome, worker.state, worker.reason)
            self._walk(worker)
        except Exception as exc:  # noqa: BLE001 - the guard: a crash is logged, never silent
            self._crashed(worker, exc)

    def _started(
        self,
        status: PodStatus,
        cs: ContainerStatus,
        ensured: Ensured,
        done: State,
        done_reason: str,
    ) -> None:
        cs.state, cs.reason, cs.message = done, done_reason, ""
        image_id = ensured.image_id
        if cs.image_id != image_id:
            if cs.image_id:
                self._drop(cs.image_id)
            cs.image_id = image_id
            holders = self._holders
            holders[image_id] = holders.get(image_id, 0) + 1
        self.images_version += 1
        cs.started_at = self._scheduler.now_ns
        # Report each container as it becomes ready, not only at the end of the sync.
        if self._on_change is not None:
            self._on_change(status)

    def _failed(self, status: PodStatus, cs: ContainerStatus, exc: ContainerError) -> None:
        cs.state, cs.reason, cs.message = State.WAITING, exc.reason, str(exc)
        self._emit_failed(status.pod, cs.container, exc.reason)

    def _synced(self, worker: _Worker) -> None:
        """The sync reached the last container: ready when every one has its image."""
        status = worker.status
        if worker.ok:
            status.images_ready_at = self._scheduler.now_ns
            if self._on_ready is not None:
                self._on_ready(status)
        elif status.init_statuses:
            for cs in status.statuses:
                if cs.state is State.WAITING and cs.reason == "ContainerCreating":
                    cs.reason = "PodInitializing"
        if self._on_change is not None:
            self._on_change(status)
        if worker.ok:
            if self._workers.get(status.pod.uid) is worker:
                del self._workers[status.pod.uid]
            worker.dead = True
        else:
            self._requeue(worker)

    def _requeue(self, worker: _Worker) -> None:
        # The requeue is a timer; the sync runs in the turn after it fires, as a task
        # sleeping on it would wake.
        scheduler = self._scheduler
        worker.timer = scheduler.call_at(
            scheduler.now_ns + self._requeue_delay(), scheduler.call_soon, self._sync, worker
        )

    def _crashed(self, worker: _Worker, exc: Exception) -> None:
        """A sync that raised: logged at once, and the worker ends, as a crashed task would
        (the pod stays as it was; the node and the other pods go on)."""
        pod = worker.status.pod
        if self._workers.get(pod.uid) is worker:
            del self._workers[pod.uid]
        worker.dead = True
        get_logger(node=self.manager.node).error(
            "task_crashed", task=f"pod-worker:{pod.key}", pod=pod.key, exc_info=exc
        )

    def _emit_failed(self, pod: Pod, container: Container, reason: str) -> None:
        # kuberuntime's startContainer: Warning Failed "Error: <reason>" after every failure.
        self.events.emit(
            container_event(
                self._scheduler.now_ns,
                self.manager.node,
                pod,
                container,
                EventType.WARNING,
                Reason.FAILED,
                reasons.container_error(reason),
            )
        )

    def _changed(self, status: PodStatus) -> None:
        if self._on_change is not None:
            self._on_change(status)


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
