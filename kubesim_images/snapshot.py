"""What a node looks like at one instant, as frozen values: its read model.

Metrics, the daemon's `/debug` endpoints and Node object, and scenario reports all read a node
through one `NodeSnapshot` instead of reaching into its queue, back-off, store and GC, so those
can change shape without breaking their readers, and a reader can never change the node. The
node builds a snapshot on demand (`Node.snapshot`): nothing is kept up to date on the hot path
of a pull, and a scenario of millions of pulls pays for a snapshot only when it reports. The
values are named tuples, immutable as frozen dataclasses and made five times faster: a report of
100,000 nodes makes a million of them.
"""

from __future__ import annotations

from typing import NamedTuple

from kubesim_images.image_gc import GCPolicy, GCReason, GCRun


class PullView(NamedTuple):
    """A pull waiting for a slot or holding one; times in loop nanoseconds."""

    pull_id: int
    image: str  # as the pod wrote it
    reference: str  # what is pulled: `registry/repository:tag` or `@digest`
    pod: str  # namespace/name
    enqueued_at: int
    started_at: int | None  # None while waiting
    bytes_done: int | None = None  # None when the backend cannot tell
    bytes_total: int | None = None


class BackoffView(NamedTuple):
    """One back-off entry, keyed by the pod's UID and the image as written."""

    pod_uid: str
    image: str
    backoff: int  # ns
    last_update: int  # loop ns

    @property
    def key(self) -> str:
        return f"{self.pod_uid}_{self.image}"

    def remaining(self, now: int) -> int:
        """Nanoseconds left in back-off at `now` (<= 0: a pull may be tried)."""
        return self.backoff - (now - self.last_update)


class ImageView(NamedTuple):
    """An image on the node; `last_used`/`first_detected` as image GC's sweeps saw it."""

    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size: int
    pinned: bool
    last_used: int | None  # None: never seen in use
    first_detected: int | None  # None: no sweep has seen it yet


class DiskView(NamedTuple):
    """The image filesystem as the node's runtime reports it, in bytes."""

    capacity: int
    available: int
    used: int  # other writers' and the images' (may exceed a capacity preloaded past)
    layer_bytes: int  # distinct layers the node's store holds
    bytes_downloaded: int  # layer bytes fetched from registries since the node started
    error: str | None = None  # the filesystem could not be measured (all 0 then)


class GCView(NamedTuple):
    """Image GC: its policy, totals, the last runs (oldest first) and disk samples."""

    policy: GCPolicy
    runs: int
    images_collected: int
    bytes_freed: int
    re_pulls: int  # images stored again after GC had removed them
    collected_total: tuple[tuple[GCReason, int], ...]  # kubelet_image_garbage_collected_total
    history: tuple[GCRun, ...]
    disk: tuple[tuple[int, int, int], ...]  # (t, used before, used after) per GC period


class NodeSnapshot(NamedTuple):
    node: str
    at: int | None  # loop ns; None when the reader did not need it stamped
    pull_concurrency: int | None  # None: unlimited
    waiting: tuple[PullView, ...]  # in queue order
    in_flight: tuple[PullView, ...]  # in start order
    backoff: tuple[BackoffView, ...]  # by key
    images: tuple[ImageView, ...]  # by id
    disk: DiskView
    gc: GCView
