"""Image garbage collection, as the kubelet's `image_gc_manager.go` (v1.32) decides it.

The manager keeps, per image id, when it was first detected and when it was last seen in use,
in integer nanoseconds of the node's clock. Every sweep (`detect`) lists the runtime's images
and the ids pods use; a GC run then
1. drops images unused for longer than `imageMaximumGCAge` (once the node itself is that old),
   whatever the disk usage (reason `age`);
2. when usage is at or over `imageGCHighThresholdPercent`, frees down to
   `imageGCLowThresholdPercent` (reason `space`), least recently used first, ties broken by
   first detection; never an image in use, never a pinned one (the sandbox image), never one
   first detected less than `imageMinimumGCAge` ago.
Freed bytes are counted as the kubelet counts them, by image size, although shared layers
stay on disk until no image needs them: the runtime reports what it really released, and the
next run sees the true usage. So a node full of images sharing a big base layer needs more
than one run to get under the threshold, as a real one does.

The module is sans-I/O: no clock and no event loop; the caller passes `now` and the set of
images in use, and receives a `GCRun` with what was removed and the events to record.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

from kubesim_images.clock import NS_PER_SECOND, to_ns
from kubesim_images.errors import ImageFsStatsError, ImageRemoveError, InvalidValueError
from kubesim_images.reasons import EventType, Reason
from kubesim_images.units import format_duration_ns

# ImageGCPeriod in the kubelet, also the period of its image detection loop.
GC_PERIOD_NS = 5 * 60 * NS_PER_SECOND
DEFAULT_SANDBOX_IMAGE = "registry.k8s.io/pause:3.10"
# Go's zero time.Time: an image never seen in use sorts before every real instant.
_NEVER = -(1 << 63)


class GCReason(enum.StrEnum):
    """`reason` label values of `kubelet_image_garbage_collected_total`."""

    AGE = "age"
    SPACE = "space"


@dataclass(frozen=True, slots=True)
class GCPolicy:
    """`ImageGCPolicy`: thresholds in percent, ages in nanoseconds (0 max age: off)."""

    high_threshold_percent: int = 85
    low_threshold_percent: int = 80
    min_age: int = 120 * NS_PER_SECOND
    max_age: int = 0

    def __post_init__(self) -> None:
        # NewImageGCManager's checks, with its texts.
        high, low = self.high_threshold_percent, self.low_threshold_percent
        if not 0 <= high <= 100:
            raise InvalidValueError(
                f"invalid HighThresholdPercent {high}, must be in range [0-100]"
            )
        if not 0 <= low <= 100:
            raise InvalidValueError(f"invalid LowThresholdPercent {low}, must be in range [0-100]")
        if low > high:
            raise InvalidValueError(
                f"LowThresholdPercent {low} can not be higher than HighThresholdPercent {high}"
            )

    @property
    def enabled(self) -> bool:
        """The kubelet starts no GC loop when the high threshold is 100."""
        return self.high_threshold_percent != 100

    @classmethod
    def from_seconds(
        cls, high: int, low: int, min_age_seconds: float, max_age_seconds: float
    ) -> GCPolicy:
        return cls(high, low, to_ns(min_age_seconds), to_ns(max_age_seconds))


class ListedImage(Protocol):
    """What the runtime's ListImages says of one image."""

    @property
    def id(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def pinned(self) -> bool: ...


class FsStats(NamedTuple):
    """The image filesystem as `ImageFsStats` reports it, in bytes."""

    # Named tuples, here and for `GCRun`: every node measures its disk and records a run
    # every 5 minutes, millions of times in a large scenario; a frozen dataclass of as many
    # fields takes five times as long to make.

    capacity: int
    available: int


class ImageRuntime(Protocol):
    """The slice of the container runtime image GC needs; the node's store implements it."""

    def list_images(self) -> Iterable[ListedImage]: ...

    def remove_image(self, image_id: str) -> int:
        """Remove the image; return the bytes really released (shared layers stay)."""
        ...

    def image_fs_stats(self) -> FsStats:
        """The filesystem now; raise `ImageFsStatsError` when it cannot be measured."""
        ...


@runtime_checkable
class BlockingRuntime(ImageRuntime, Protocol):
    """A runtime whose calls block on a disk (a real content store): its GC runs in a worker
    thread, which must touch nothing the event loop owns. What a removal means for the loop's
    side (the node's in-memory store) is queued and applied by `settle`, on the loop."""

    def refresh(self) -> None:
        """In the worker thread, before a run: measure again what may have drifted."""
        ...

    def settle(self) -> None:
        """On the loop, after a run: apply what the run removed to the loop's side."""
        ...


@dataclass(slots=True)
class ImageUsage:
    """The kubelet's `imageRecord`: times in nanoseconds, `last_used` None if never in use."""

    first_detected: int
    last_used: int | None
    size: int
    pinned: bool


@dataclass(frozen=True, slots=True)
class Removal:
    image_id: str
    size: int  # as the kubelet counts it
    released: int  # bytes the filesystem got back
    reason: GCReason


@dataclass(frozen=True, slots=True)
class NodeEvent:
    type: EventType
    reason: Reason
    message: str


class GCRun(NamedTuple):
    """One `GarbageCollect`: what it saw, what it removed, the error and events it produced."""

    at: int
    usage_percent: int | None  # None when it stopped before reading the filesystem
    amount_to_free: int  # 0 when usage was under the high threshold
    freed: int  # image sizes freed for space, the kubelet's own count
    removed: tuple[Removal, ...]
    error: str | None
    events: tuple[NodeEvent, ...]

    @property
    def released(self) -> int:
        return sum(removal.released for removal in self.removed)


@dataclass(slots=True)
class _RunState:
    usage_percent: int | None = None
    amount: int = 0
    freed: int = 0
    removed: list[Removal] = field(default_factory=list)
    error: str | None = None
    events: list[NodeEvent] = field(default_factory=list)

    def warn(self, reason: Reason, message: str) -> None:
        self.events.append(NodeEvent(EventType.WARNING, reason, message))


def quiet_run(now: int, usage_percent: int) -> GCRun:
    """The run of a quiet period: usage under the high threshold, nothing past a maximum age."""
    return GCRun(now, usage_percent, 0, 0, (), None, ())


def _usage_percent(stats: FsStats) -> int:
    """The filesystem's usage in percent, as the kubelet works it out: Go's integer arithmetic,
    truncating, on non-negative values (capacity > 0)."""
    return 100 - min(stats.available, stats.capacity) * 100 // stats.capacity


class _GCError(Exception):
    """Ends a GC run; its text is the run's error, as the kubelet returns it."""


class _PartialError(_GCError):
    """Some removals failed: the others happened and are reported with the error."""

    def __init__(self, message: str, removed: list[Removal]) -> None:
        super().__init__(message)
        self.removed = removed


class ImageGCManager:
    """`realImageGCManager` for one node; `began` is when its GC loop started (`beganGC`)."""

    __slots__ = ("_prev_failed", "began", "collected_total", "policy", "records", "runtime")

    def __init__(self, policy: GCPolicy, runtime: ImageRuntime, *, began: int = 0) -> None:
        self.policy = policy
        self.runtime = runtime
        self.began = began
        self.records: dict[str, ImageUsage] = {}
        self.collected_total: dict[GCReason, int] = {}  # kubelet_image_garbage_collected_total
        self._prev_failed = False

    def detect(self, now: int, in_use: Collection[str]) -> None:
        """`detectImages`: new images are first detected now; images in use were used now."""
        records = self.records
        seen = 0
        for image in self.runtime.list_images():
            image_id = image.id
            seen += 1
            record = records.get(image_id)
            if record is None:
                record = records[image_id] = ImageUsage(now, None, image.size, image.pinned)
            else:
                record.size = image.size
                record.pinned = image.pinned
            if image_id in in_use:
                record.last_used = now
        if seen != len(records):  # images gone since: forget them (ids are listed once)
            current = {image.id for image in self.runtime.list_images()}
            for image_id in [i for i in records if i not in current]:
                del records[image_id]

    def restore(self, image_id: str, first_detected: int, last_used: int | None) -> None:
        """Seed an image's record from a runtime that kept it across a restart, so the minimum
        age and the order of eviction survive; the next sweep fills in size and pinned."""
        self.records[image_id] = ImageUsage(first_detected, last_used, 0, pinned=False)

    def images_in_eviction_order(
        self, now: int, in_use: Collection[str]
    ) -> list[tuple[str, ImageUsage]]:
        """Unused, unpinned images, least recently used first, then first detected.

        The image id breaks remaining ties so that runs are reproducible (the kubelet's
        order there is that of a Go map: arbitrary).
        """
        self.detect(now, in_use)
        return self._eviction_order(in_use)

    def _eviction_order(self, in_use: Collection[str]) -> list[tuple[str, ImageUsage]]:
        candidates = [
            (image_id, record)
            for image_id, record in self.records.items()
            if image_id not in in_use and not record.pinned
        ]
        candidates.sort(key=_eviction_key)
        return candidates

    def free_old_images(
        self, images: list[tuple[str, ImageUsage]], now: int
    ) -> tuple[list[tuple[str, ImageUsage]], list[Removal]]:
        """`freeOldImages`: remove what has been unused for longer than the maximum age."""
        max_age = self.policy.max_age
        # Not before the node has run for max_age: images it found at start look unused.
        if max_age == 0 or now - self.began <= max_age:
            return images, []
        remaining: list[tuple[str, ImageUsage]] = []
        removed: list[Removal] = []
        errors: list[str] = []
        for image_id, record in images:
            last_used = _NEVER if record.last_used is None else record.last_used
            if now - last_used > max_age:
                try:
                    removed.append(self._free_image(image_id, record, GCReason.AGE))
                except ImageRemoveError as exc:
                    errors.append(str(exc))
                    remaining.append((image_id, record))
                continue
            remaining.append((image_id, record))
        if errors:
            raise _PartialError(
                f"wanted to free images older than {format_duration_ns(max_age)}, encountered "
                f"errors in image deletion: {_aggregate(errors)}",
                removed,
            )
        return remaining, removed

    def free_space(
        self, bytes_to_free: int, now: int, images: list[tuple[str, ImageUsage]]
    ) -> tuple[int, list[Removal]]:
        """`freeSpace`: remove images in order until `bytes_to_free` (by image size) is met."""
        min_age = self.policy.min_age
        freed = 0
        removed: list[Removal] = []
        errors: list[str] = []
        for image_id, record in images:
            if record.last_used is not None and record.last_used >= now:
                continue  # used at this very instant
            if now - record.first_detected < min_age:
                continue  # just pulled: a container is likely about to use it
            try:
                removed.append(self._free_image(image_id, record, GCReason.SPACE))
            except ImageRemoveError as exc:
                errors.append(str(exc))
                continue
            freed += record.size
            if freed >= bytes_to_free:
                break
        if errors:
            raise _PartialError(
                f"wanted to free {bytes_to_free} bytes, but freed {freed} bytes space with "
                f"errors in image deletion: {_aggregate(errors)}",
                removed,
            )
        return freed, removed

    def _free_image(self, image_id: str, record: ImageUsage, reason: GCReason) -> Removal:
        released = self.runtime.remove_image(image_id)
        del self.records[image_id]
        self.collected_total[reason] = self.collected_total.get(reason, 0) + 1
        return Removal(image_id, record.size, released, reason)

    def garbage_collect(
        self, now: int, in_use: Collection[str], stats: FsStats | None = None
    ) -> GCRun:
        """`GarbageCollect`: one run at `now`, as the kubelet's loop calls it. `stats`: the
        image filesystem as just read by the caller (None: read it here)."""
        if stats is not None and self.policy.max_age == 0 and stats.capacity > 0:
            # The common period: nothing past a maximum age, usage under the threshold. It
            # costs a sweep and a reading, no more (millions of periods in a large run).
            self.detect(now, in_use)
            usage = _usage_percent(stats)
            if usage < self.policy.high_threshold_percent:
                return quiet_run(now, usage)
        run = _RunState()
        try:
            self._collect(now, in_use, run, stats)
        except _PartialError as exc:
            run.removed.extend(exc.removed)
            run.error = str(exc)
        except _GCError as exc:
            run.error = str(exc)
        return GCRun(
            now,
            run.usage_percent,
            run.amount,
            run.freed,
            tuple(run.removed),
            run.error,
            tuple(run.events),
        )

    def _collect(
        self, now: int, in_use: Collection[str], run: _RunState, stats: FsStats | None
    ) -> None:
        self.detect(now, in_use)
        # The images that could go, in order, matter only once one may go: past the maximum
        # age, or above the high threshold. Most periods of a large run are neither, and
        # skipping the ordering there halves the cost of a period (millions of them).
        images: list[tuple[str, ImageUsage]] | None = None
        max_age = self.policy.max_age
        if max_age != 0 and now - self.began > max_age:
            images, by_age = self.free_old_images(self._eviction_order(in_use), now)
            run.removed.extend(by_age)
        if stats is None:
            try:
                stats = self.runtime.image_fs_stats()
            except ImageFsStatsError as exc:
                raise _GCError(str(exc)) from None
        capacity, available = stats.capacity, min(stats.available, stats.capacity)
        if capacity == 0:
            message = "invalid capacity 0 on image filesystem"
            run.warn(Reason.INVALID_DISK_CAPACITY, message)
            raise _GCError(message)
        run.usage_percent = _usage_percent(stats)
        if run.usage_percent < self.policy.high_threshold_percent:
            return
        run.amount = capacity * (100 - self.policy.low_threshold_percent) // 100 - available
        if images is None:
            images = self._eviction_order(in_use)
        run.freed, by_space = self.free_space(run.amount, now, images)
        run.removed.extend(by_space)
        if run.freed < run.amount:
            message = (
                "Failed to garbage collect required amount of images. Attempted to free "
                f"{run.amount} bytes, but only found {run.freed} bytes eligible to free."
            )
            run.warn(Reason.FREE_DISK_SPACE_FAILED, message)
            raise _GCError(message)

    def quiet_period(self, now: int, in_use: Collection[str]) -> None:
        """`periodic` when the caller has read the filesystem under the high threshold and
        there is no maximum age: a sweep, and a run that frees nothing (`quiet_run`)."""
        self.detect(now, in_use)
        self._prev_failed = False

    def periodic(self, now: int, in_use: Collection[str], stats: FsStats | None = None) -> GCRun:
        """The kubelet's GC loop body: an `ImageGCFailed` event only for repeated failures."""
        run = self.garbage_collect(now, in_use, stats)
        if run.error is not None:
            if self._prev_failed:
                failed = NodeEvent(EventType.WARNING, Reason.IMAGE_GC_FAILED, run.error)
                run = GCRun(
                    run.at,
                    run.usage_percent,
                    run.amount_to_free,
                    run.freed,
                    run.removed,
                    run.error,
                    (*run.events, failed),
                )
            self._prev_failed = True
        else:
            self._prev_failed = False
        return run

    def delete_unused_images(self, now: int, in_use: Collection[str]) -> list[Removal]:
        """`DeleteUnusedImages`: every eligible image, whatever the usage."""
        images = self.images_in_eviction_order(now, in_use)
        _, removed = self.free_space(_MAX_INT64, now, images)
        return removed


_MAX_INT64 = (1 << 63) - 1


def _eviction_key(item: tuple[str, ImageUsage]) -> tuple[int, int, str]:
    image_id, record = item
    last_used = _NEVER if record.last_used is None else record.last_used
    return (last_used, record.first_detected, image_id)


def _aggregate(errors: list[str]) -> str:
    """utilerrors.NewAggregate's text: the error alone, or `[a, b]`."""
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
