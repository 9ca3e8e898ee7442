"""The real content store as the runtime image GC talks to: listing with first detection and
pinned flags, removal by reference count with the bytes released, and the image filesystem
measured against a configured capacity or the disk it is on."""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from contentkit import blobs_of, put_image

from kubesim_images import backends
from kubesim_images.contentstore import ContentError, ContentImage, ContentStore
from kubesim_images.events import EventLog
from kubesim_images.image_gc import GCPolicy, ImageGCManager
from kubesim_images.nodegc import NodeImageGC
from kubesim_images.oci.client import ClientConfig
from kubesim_images.oci.config import OciRegistryConfig
from kubesim_images.registry.catalogue import Catalogue
from kubesim_images.registry.spec import RegistrySpec
from kubesim_images.runtime import ContentRuntime
from kubesim_images.store import ImageRecord, ImageStore, Layer

PAUSE = "registry.k8s.io/pause:3.10"


@pytest.fixture
def content(tmp_path: Path) -> Iterator[ContentStore]:
    store = ContentStore(tmp_path / "content", durable=False, pinned=[PAUSE])
    yield store
    store.close()


class TestListing:
    def test_a_second_pull_keeps_the_first_detection(self, content: ContentStore) -> None:
        first = put_image(content, "example.com/a:v1", 1, now=100.0)
        again = put_image(content, "example.com/a:v1", 1, now=250.0)
        assert again.id == first.id
        [listed] = content.list_images()
        assert (listed.first_detected, listed.last_used) == (100.0, 250.0)
        assert listed.size == first.size

    def test_images_named_by_a_pinned_reference_are_pinned(self, content: ContentStore) -> None:
        pause = put_image(content, PAUSE, 1, now=0.0)
        other = put_image(content, "example.com/a:v1", 2, now=0.0)
        pinned = {i.id: i.pinned for i in content.list_images()}
        assert pinned == {pause.id: True, other.id: False}

    def test_a_store_written_before_gc_gains_first_detection(self, tmp_path: Path) -> None:
        root = tmp_path / "old"
        root.mkdir()
        db = sqlite3.connect(root / "images.db")
        db.execute(
            "CREATE TABLE images (id TEXT PRIMARY KEY, size INTEGER NOT NULL, "
            "last_used REAL NOT NULL, pinned INTEGER NOT NULL DEFAULT 0, doc TEXT NOT NULL)"
        )
        db.commit()
        db.close()
        store = ContentStore(root, durable=False)
        try:
            image = put_image(store, "example.com/a:v1", 1, now=42.0)
            assert [i.first_detected for i in store.list_images()] == [42.0]
            assert store.get(image.id) == image
        finally:
            store.close()


class TestRemoval:
    def test_shared_layer_is_released_with_its_last_image(self, content: ContentStore) -> None:
        # put_image shares a layer between images whose index is equal modulo 10.
        a = put_image(content, "example.com/a:v1", 3, now=0.0)
        b = put_image(content, "example.com/b:v1", 13, now=0.0)
        shared = a.layers[0]
        assert shared == b.layers[0]
        assert content.remove_image(a.id) == a.size - shared[1]
        assert content.has_blob(shared[0])
        assert content.remove_image(b.id) == b.size
        assert not content.has_blob(shared[0])
        assert content.remove_image(b.id) == 0  # already gone: nothing released, no error
        assert list(content.blobs_dir.iterdir()) == []

    def test_the_nodes_view_follows_a_removal(self, content: ContentStore) -> None:
        a = put_image(content, "example.com/a:v1", 1, now=0.0)
        mirror = ImageStore()
        layers = tuple(Layer(d, s) for d, s in a.layers)
        mirror.add(ImageRecord(a.id, layers, repo_tags=["example.com/a:v1"]), None, 0)
        runtime = ContentRuntime(content, mirror)
        assert runtime.remove_image(a.id) == a.size
        assert mirror.get(a.id) is not None  # the worker thread leaves the loop's store alone
        runtime.settle()
        assert mirror.get(a.id) is None
        assert not any(content.has_blob(d) for d in blobs_of(a))


class TestImageFs:
    def test_configured_capacity_counts_blobs_and_partial_downloads(
        self, content: ContentStore
    ) -> None:
        content.capacity, content.other_usage = 1 << 20, 1000
        image = put_image(content, "example.com/a:v1", 1, now=0.0)
        ingest = content.open_ingest("sha256:" + "f" * 64, 1000)
        ingest.write(b"x" * 500)  # a download under way
        ingest.close()
        fs = content.image_fs_stats()
        assert fs.capacity - fs.available == 1000 + image.size + 500
        # Another process's partial download is seen once the store walks its files again.
        (content.ingest_dir / "other.partial").write_bytes(b"y" * 300)
        assert content.bytes_on_disk() == image.size + 500
        assert content.rescan() == image.size + 800
        assert content.bytes_on_disk() == image.size + 800

    def test_the_count_follows_commits_removals_and_discards(self, content: ContentStore) -> None:
        a = put_image(content, "example.com/a:v1", 1, now=0.0)
        b = put_image(content, "example.com/b:v1", 11, now=0.0)  # shares a layer with a
        assert content.bytes_on_disk() == content.rescan()
        content.remove_image(a.id)
        assert content.bytes_on_disk() == content.rescan() == b.size
        bad = content.open_ingest("sha256:" + "e" * 64, 3)
        bad.write(b"abc")
        with pytest.raises(ContentError):
            bad.commit()  # not the digest it claims: discarded
        assert content.bytes_on_disk() == content.rescan() == b.size

    def test_without_capacity_the_filesystem_is_measured(self, content: ContentStore) -> None:
        fs = content.image_fs_stats()
        vfs = os.statvfs(content.root)
        assert fs.capacity == vfs.f_blocks * vfs.f_frsize
        assert 0 < fs.available <= fs.capacity

    def test_an_unmeasurable_filesystem_is_the_gc_runs_error(self, content: ContentStore) -> None:
        for path in sorted(content.root.rglob("*"), reverse=True):
            if path.is_file():
                path.unlink()
            else:
                path.rmdir()
        content.root.rmdir()
        manager = ImageGCManager(GCPolicy(), ContentRuntime(content, ImageStore()))
        run = manager.garbage_collect(0, set())
        assert run.error is not None
        assert run.error.startswith("failed to get imageFs info: [Errno 2]")


class _ThreadSpy(ContentRuntime):
    """Notes the thread each runtime call runs on."""

    __slots__ = ("threads",)

    def __init__(self, content: ContentStore, store: ImageStore) -> None:
        super().__init__(content, store)
        self.threads: set[int] = set()

    def list_images(self) -> list[ContentImage]:
        self.threads.add(threading.get_ident())
        return super().list_images()

    def remove_image(self, image_id: str) -> int:
        self.threads.add(threading.get_ident())
        return super().remove_image(image_id)


class TestOffTheLoop:
    async def test_a_run_on_a_real_store_works_in_a_thread_and_settles_on_the_loop(
        self, content: ContentStore
    ) -> None:
        image = put_image(content, "example.com/a:v1", 1, now=0.0)
        mirror = ImageStore()
        layers = tuple(Layer(d, s) for d, s in image.layers)
        mirror.add(ImageRecord(image.id, layers, repo_tags=["example.com/a:v1"]), None, 0)
        content.capacity, content.other_usage = 10 * image.size, 9 * image.size
        runtime = _ThreadSpy(content, mirror)
        log = EventLog()
        gc = NodeImageGC("n", runtime, GCPolicy(min_age=0), log, set)
        gc.start()
        runtime.threads.clear()
        run = await gc.collect_now()
        await gc.stop()
        assert run is not None
        assert [r.image_id for r in run.removed] == [image.id]
        assert runtime.threads
        assert threading.get_ident() not in runtime.threads
        assert mirror.get(image.id) is None
        assert list(gc.history) == [run]
        assert gc.images_collected == 1


class TestWhereGCWorks:
    """`backends.build` gives each node the runtime its image GC works through."""

    @pytest.mark.parametrize(("kind", "real"), [("keep", True), ("discard", False), (None, False)])
    async def test_a_kept_content_store_or_the_nodes_store(
        self, tmp_path: Path, kind: str | None, real: bool
    ) -> None:
        oci = None if kind is None else OciRegistryConfig(ClientConfig(), None, kind)  # type: ignore[arg-type]
        registries = backends.build(
            RegistrySpec(Catalogue(), 0.0, math.inf, (), None),
            oci,
            seed=0,
            node_bandwidth=math.inf,
            content_root=lambda node: tmp_path / node,
            now=lambda: 0.0,
        )
        try:
            registries.node("n", math.inf)
            store = ImageStore()
            runtime = registries.runtime(
                "n", store, capacity=1 << 30, other_usage=1 << 20, pinned=[PAUSE]
            )
            if real:
                assert isinstance(runtime, ContentRuntime)
                content = runtime.content
                assert (content.capacity, content.other_usage) == (1 << 30, 1 << 20)
                assert content.pinned_names == {PAUSE}
                assert content.root == tmp_path / "n"
            else:
                assert runtime is store
        finally:
            await registries.close()
