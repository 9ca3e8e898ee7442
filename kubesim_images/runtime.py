"""The container runtime image GC talks to when a node's images are real.

A node keeps its images in memory (`store.ImageStore`: presence, names, node status) whatever
the backend; with the OCI backend keeping what it pulls, the truth is the content store on
disk. Image GC must then list, measure and remove there, and every removal must also leave the
node's view, or the kubelet logic would think an image present whose blobs are gone. This
adapter is that composition: the same `image_gc.ImageGCManager` drives it as it drives a
simulated store.

Order on removal: the content store first (record, then the blobs no other image holds), the
node's view after. A crash between the two leaves the state database naming an image the
content store no longer has, which the daemon's restore already drops.

Its calls block on the disk (SQLite commits, unlinks, a walk of the blobs), so it is a
`BlockingRuntime`: image GC runs it in a worker thread, and the removals reach the node's
view, which belongs to the event loop, through `settle`, called on the loop after the run.
"""

from __future__ import annotations

from kubesim_images.contentstore import ContentImage, ContentStore
from kubesim_images.image_gc import FsStats
from kubesim_images.logging import get_logger
from kubesim_images.store import ImageStore

_log = get_logger()


class ContentRuntime:
    """`image_gc.ImageRuntime` over a real content store, keeping the node's store in step."""

    __slots__ = ("_removed", "content", "store")

    def __init__(self, content: ContentStore, store: ImageStore) -> None:
        self.content = content
        self.store = store
        self._removed: list[str] = []  # by the worker thread, for `settle`

    def list_images(self) -> list[ContentImage]:
        return self.content.list_images()

    def remove_image(self, image_id: str) -> int:
        released = self.content.remove_image(image_id)
        self._removed.append(image_id)
        _log.debug("image_removed", id=image_id, released=released)
        return released

    def refresh(self) -> None:
        """Re-walk the store's files: usage counts what other processes did too."""
        self.content.rescan()

    def settle(self) -> None:
        """On the loop, after a run: the node's store forgets what the run removed."""
        removed, self._removed = self._removed, []
        for image_id in removed:
            self.store.remove_image(image_id)  # counted as collected: a later pull re-pulls

    def image_fs_stats(self) -> FsStats:
        return self.content.image_fs_stats()
