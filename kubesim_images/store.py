"""One node's image store: layers by digest and images by id, as a container runtime keeps them.

Presence is answered by reference the way containerd/CRI does: a tagged reference matches an
image's repo tags, a digested one its repo digests. Layers are shared between images, so a pull
only needs the layers the node does not already have. `last_used` feeds node status.

It is also the node's image filesystem: with a `capacity`, usage is `other_usage` (what other
writers keep there) plus the bytes of the distinct layers held, and layers that would not fit
are refused with the error containerd gives when its content store cannot write
(`no space left on device`). It is the runtime image GC talks to (`image_gc.ImageRuntime`):
listing images with their pinned flag (images named by a pinned reference, the sandbox image),
removing them and reporting the filesystem. This module is in-memory; persistence wraps it.

Like containerd's content store, it also knows which layers a pull on the node is fetching
right now (`claim`/`release`): a second pull needing one of them waits for it rather than
downloading it again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubesim_images.errors import RegistryError
from kubesim_images.fields import Fields
from kubesim_images.image_gc import FsStats
from kubesim_images.reference import ImageReference

# Where containerd's content store writes a blob while fetching it.
_INGEST_ROOT = "/var/lib/containerd/io.containerd.content.v1.content/ingest"


@dataclass(frozen=True, slots=True)
class ImageFsSpec:
    """A node's image filesystem as configured (`imageFs`): capacity, other writers' bytes."""

    capacity: int = 100 * 2**30
    other_usage: int = 0
    # Written in the file: a real content store is measured against it; not written, against
    # the free space of the disk it is on.
    capacity_set: bool = field(default=False, compare=False)


def parse_image_fs(ctx: Fields, raw: Any, path: str) -> ImageFsSpec:
    """`{capacity: 30Gi, otherUsage: 5Gi}`, both Kubernetes quantities; defaults 100Gi and 0."""
    fs = ctx.mapping(raw, path, {"capacity", "otherUsage"})
    default = ImageFsSpec()
    capacity = ctx.size(fs.get("capacity", default.capacity), f"{path}.capacity")
    if capacity <= 0:
        raise ctx.fail(f"{path}.capacity", "must be positive")
    other = ctx.size(fs.get("otherUsage", default.other_usage), f"{path}.otherUsage")
    if other > capacity:
        raise ctx.fail(f"{path}.otherUsage", f"must not exceed the capacity ({capacity} bytes)")
    return ImageFsSpec(capacity, other, capacity_set="capacity" in fs)


def pinned_name(ref: ImageReference) -> str:
    """The store name a pinned reference matches: `name@digest`, else `name:tag`."""
    return f"{ref.name}@{ref.digest}" if ref.digest else f"{ref.name}:{ref.tag or 'latest'}"


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str
    size: int


@dataclass(slots=True)
class ImageRecord:
    id: str  # config digest, as `crictl images --digests` shows
    layers: tuple[Layer, ...]
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    last_used: int = 0  # loop ns
    pinned: bool = False
    # Summed once: image GC reads every image's size at every sweep. Layers never change.
    size: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.size = sum([layer.size for layer in self.layers])

    def fresh_copy(self, now: int) -> ImageRecord:
        """A record of the same image with no names yet, last used `now`: what a store keeps of
        a pulled image, before naming it. Made field by field (its size known already): every
        new image of every node of a large run needs one."""
        copy = _new_record(ImageRecord)
        copy.id, copy.layers, copy.size = self.id, self.layers, self.size
        copy.repo_tags, copy.repo_digests = [], []
        copy.last_used, copy.pinned = now, self.pinned
        return copy


_new_record = object.__new__
# A named tuple's own constructor is a Python function around this one, taking keywords too.
_tuple = tuple.__new__


class NoSpaceLeftError(RegistryError):
    """The image filesystem cannot hold the layers a pull fetched (containerd's ENOSPC).

    The text is the content store's write error; the puller names the image around it as
    containerd's CRI does (`failed to pull and unpack image ...: failed to copy: ...`).
    """

    def __init__(self, digest: str) -> None:
        # containerd's ingest directory for a layer is the digest of its ref key "layer-<digest>".
        ingest = hashlib.sha256(f"layer-{digest}".encode()).hexdigest()
        super().__init__(
            f"write {_INGEST_ROOT}/{ingest}/data: no space left on device",
            code="no space left on device",
        )


class FetchClaim:
    """A pull's hold on the layers it is fetching: others needing them wait for it to settle
    (callbacks, called once, in the order they were added), then look again."""

    __slots__ = ("_waiters", "settled")

    def __init__(self) -> None:
        self.settled = False
        self._waiters: list[Callable[[], None]] = []

    def add_waiter(self, waiter: Callable[[], None]) -> None:
        if self.settled:
            waiter()
        else:
            self._waiters.append(waiter)

    def settle(self) -> None:
        self.settled = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter()


class StoreListener(Protocol):
    """Told of every change, e.g. to write it through to disk."""

    def image_changed(self, record: ImageRecord) -> None: ...

    def image_removed(self, image_id: str) -> None: ...


class ImageStore:
    __slots__ = (
        "_by_name",
        "_collected",
        "_fetching",
        "_images",
        "_layer_bytes",
        "_layer_refs",
        "_layers",
        "_pinned_names",
        "bytes_downloaded",
        "capacity",
        "listener",
        "other_usage",
        "re_pulls",
    )

    def __init__(
        self,
        *,
        capacity: int | None = None,
        other_usage: int = 0,
        pinned: Iterable[str] = (),
    ) -> None:
        self.listener: StoreListener | None = None
        self.bytes_downloaded = 0  # layer bytes fetched from registries since start
        self.capacity = capacity  # None: no disk model, every layer fits
        self.other_usage = other_usage
        self._pinned_names = frozenset(pinned)  # "repo:tag" names whose image is pinned
        self._collected: set[str] = set()  # ids image GC removed, until they come back
        self.re_pulls = 0  # images stored again after image GC had removed them
        self._layer_bytes = 0
        self._layers: dict[str, int] = {}
        self._layer_refs: dict[str, int] = {}
        self._images: dict[str, ImageRecord] = {}
        self._by_name: dict[str, str] = {}  # "repo:tag" or "repo@digest" -> image id
        # Layers a pull is fetching -> settled when that pull stops fetching them.
        self._fetching: dict[str, FetchClaim] = {}

    def has_layer(self, digest: str) -> bool:
        return digest in self._layers

    def missing_layers(self, layers: Iterable[Layer]) -> list[Layer]:
        have = self._layers
        for layer in layers:
            if layer.digest not in have:
                break
        else:
            return []  # the common case once a node has an image's layers
        seen: set[str] = set()
        out: list[Layer] = []
        for layer in layers:
            if layer.digest not in self._layers and layer.digest not in seen:
                seen.add(layer.digest)
                out.append(layer)
        return out

    def add_layers(self, layers: Iterable[Layer]) -> None:
        """Layers just downloaded, not yet referenced by an image (a content store's blobs).

        All or nothing: when they do not all fit, none is kept (containerd drops a failed
        ingest) and `NoSpaceLeftError` names the first layer that would not fit.
        """
        new = {layer.digest: layer for layer in layers if layer.digest not in self._layers}
        if self.capacity is not None:
            used = self.usage
            for layer in new.values():
                used += layer.size
                if used > self.capacity:
                    raise NoSpaceLeftError(layer.digest)
        for layer in new.values():
            self._layers[layer.digest] = layer.size
            self._layer_bytes += layer.size
            self.bytes_downloaded += layer.size

    def fetching(self, digest: str) -> FetchClaim | None:
        """The claim of the pull fetching `digest`, settled when it stops (done or not); None
        when no pull is fetching it."""
        return self._fetching.get(digest)

    def claim(self, layers: Iterable[Layer]) -> FetchClaim:
        """A pull starts fetching `layers` (none of them claimed); `release` ends it."""
        claim = FetchClaim()
        fetching = self._fetching
        for layer in layers:
            fetching[layer.digest] = claim
        return claim

    def release(self, layers: Iterable[Layer], claim: FetchClaim) -> None:
        """The pull stopped fetching: whoever waits on its layers looks again."""
        fetching = self._fetching
        for layer in layers:
            del fetching[layer.digest]
        claim.settle()

    def lookup(self, ref: ImageReference) -> ImageRecord | None:
        """The image a reference names on this node, or None (`GetImageRef` == "")."""
        image_id = self._by_name.get(ref.pull_ref)
        return self._images.get(image_id) if image_id is not None else None

    def get(self, image_id: str) -> ImageRecord | None:
        return self._images.get(image_id)

    def add(self, record: ImageRecord, ref: ImageReference | None, now: int) -> ImageRecord:
        """Store an image (merging names into an existing record with the same id)."""
        existing = self._images.get(record.id)
        if existing is None:
            existing = record.fresh_copy(now)
            self._images[record.id] = existing
            if record.id in self._collected:
                self._collected.discard(record.id)
                self.re_pulls += 1
            for layer in {layer.digest: layer for layer in record.layers}.values():
                if layer.digest not in self._layers:
                    self._layer_bytes += layer.size
                self._layers[layer.digest] = layer.size
                self._layer_refs[layer.digest] = self._layer_refs.get(layer.digest, 0) + 1
        by_name = self._by_name
        image_id = record.id
        for tag in record.repo_tags:
            if by_name.get(tag) != image_id or tag not in existing.repo_tags:
                self._name(existing, tag, existing.repo_tags)
        for digest in record.repo_digests:
            if by_name.get(digest) != image_id or digest not in existing.repo_digests:
                self._name(existing, digest, existing.repo_digests)
        if ref is not None and ref.tag and not ref.digest:
            tag = ref.pull_ref  # name:tag, most often one of the record's, named just above
            if tag not in record.repo_tags and (
                by_name.get(tag) != image_id or tag not in existing.repo_tags
            ):
                self._name(existing, tag, existing.repo_tags)
        existing.last_used = now
        if self.listener is not None:
            self.listener.image_changed(existing)
        return existing

    def _name(self, record: ImageRecord, name: str, names: list[str]) -> None:
        previous = self._by_name.get(name)
        if previous is not None and previous != record.id:
            # A tag moves to the new image, as `docker pull` of a moved tag leaves the old
            # image dangling.
            old = self._images[previous]
            if name in old.repo_tags:
                old.repo_tags.remove(name)
                if self.listener is not None:
                    self.listener.image_changed(old)
        self._by_name[name] = record.id
        if name not in names:
            names.append(name)
        if name in self._pinned_names:
            record.pinned = True

    def touch(self, image_id: str, now: int) -> None:
        record = self._images.get(image_id)
        if record is not None:
            record.last_used = now

    def remove(self, image_id: str) -> ImageRecord | None:
        record = self._images.pop(image_id, None)
        if record is None:
            return None
        self._release(record)
        if self.listener is not None:
            self.listener.image_removed(image_id)
        return record

    def _release(self, record: ImageRecord) -> int:
        """Drop the record's names and the layers no other image uses; the bytes freed."""
        image_id = record.id
        freed = 0
        for name in record.repo_tags + record.repo_digests:
            if self._by_name.get(name) == image_id:
                del self._by_name[name]
        for layer in {layer.digest: layer for layer in record.layers}.values():
            count = self._layer_refs.get(layer.digest, 0) - 1
            if count <= 0:
                self._layer_refs.pop(layer.digest, None)
                size = self._layers.pop(layer.digest, None)
                if size is not None:
                    freed += size
            else:
                self._layer_refs[layer.digest] = count
        self._layer_bytes -= freed
        return freed

    def images(self) -> list[ImageRecord]:
        return list(self._images.values())

    @property
    def bytes_used(self) -> int:
        """Bytes of the distinct layers held."""
        return self._layer_bytes

    @property
    def usage(self) -> int:
        """The image filesystem's used bytes: other writers' plus the layers'."""
        return self.other_usage + self._layer_bytes

    # The container runtime as image GC sees it (`image_gc.ImageRuntime`).

    def list_images(self) -> Iterable[ImageRecord]:
        return self._images.values()

    def remove_image(self, image_id: str) -> int:
        """Remove an image for GC; the bytes its unshared layers gave back.

        An image already gone frees nothing: containerd answers NotFound, which the kubelet
        does not count as a failure.
        """
        before = self._layer_bytes
        if self.remove(image_id) is not None:
            self._collected.add(image_id)
        return before - self._layer_bytes

    def image_fs_stats(self) -> FsStats:
        """Capacity and available bytes; without a configured capacity, an unbounded disk.
        Read by every node's image GC every 5 minutes: millions of times in a large run."""
        used = self.other_usage + self._layer_bytes
        capacity = self.capacity
        if capacity is None:
            return _tuple(FsStats, (_UNBOUNDED, _UNBOUNDED - used))
        return _tuple(FsStats, (capacity, capacity - used if used < capacity else 0))

    def __len__(self) -> int:
        return len(self._images)


_UNBOUNDED = 1 << 62  # bytes; reported when no capacity is set, so GC never triggers on space
