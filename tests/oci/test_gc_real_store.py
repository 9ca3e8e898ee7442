"""Image GC on a real content store: images pulled from a real registry, removed by the same
GC code that drives simulated stores, their blobs gone from disk; the daemon collecting on its
store; and `kill -9` in the middle of a GC run leaving no listed image without its blobs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from contentkit import blobs_of, put_image
from daemonkit import Daemon, start_daemon
from ocikit import Seeded, skopeo_copy

from kubesim_images.clock import NS_PER_SECOND
from kubesim_images.contentstore import ContentStore, StoredImage
from kubesim_images.image_gc import GCPolicy, ImageGCManager
from kubesim_images.oci.client import ClientConfig, RegistryClient
from kubesim_images.oci.media import Platform
from kubesim_images.oci.pull import pull_image
from kubesim_images.reference import parse_normalized
from kubesim_images.runtime import ContentRuntime
from kubesim_images.store import ImageRecord, ImageStore, Layer

pytestmark = pytest.mark.integration
MINUTE = 60 * NS_PER_SECOND


@pytest.fixture(scope="module")
def gc_images(seeded: Seeded) -> dict[str, str]:
    """Five images in the session's registry: gc-a and gc-b share a 256 KiB base layer."""
    base = {"base/lib.bin": os.urandom(256 << 10)}
    layers: dict[str, list[dict[str, bytes]]] = {
        "gc-a": [base, {"app/a": os.urandom(64 << 10)}],
        "gc-b": [base, {"app/b": os.urandom(64 << 10)}],
        "gc-c": [{"app/c": os.urandom(256 << 10)}],
        "gc-d": [{"app/d": os.urandom(256 << 10)}],
        "gc-e": [{"app/e": os.urandom(256 << 10)}],
    }
    refs = {}
    for name, files in layers.items():
        seeded.layout.tag(name, seeded.layout.image(files))
        refs[name] = f"{seeded.open.host}/demo/{name}:v1"
        skopeo_copy(seeded.layout, name, refs[name])
    return refs


def mirror_of(images: list[StoredImage]) -> ImageStore:
    """The node's in-memory view of the content store, as the daemon keeps it."""
    store = ImageStore()
    for image in images:
        layers = tuple(Layer(digest, size) for digest, size in image.layers)
        store.add(ImageRecord(image.id, layers, repo_tags=list(image.repo_tags)), None, 0)
    return store


class TestGCOnAPulledStore:
    """The kubelet's free-space GC over images pulled for real."""

    async def test_least_recently_used_go_first_and_their_blobs_leave_the_disk(
        self, gc_images: dict[str, str], tmp_path: Path
    ) -> None:
        content = ContentStore(tmp_path / "content")
        pulled: dict[str, StoredImage] = {}
        async with RegistryClient(ClientConfig()) as client:
            for name, ref in gc_images.items():
                result = await pull_image(
                    client, content, parse_normalized(ref), platform=Platform("linux", "amd64")
                )
                pulled[name] = result.image
        # What the store counted as it wrote is what is on disk.
        assert content.bytes_on_disk() == content.rescan()
        ids = {name: image.id for name, image in pulled.items()}
        size = {name: image.size for name, image in pulled.items()}
        mirror = mirror_of(list(pulled.values()))
        runtime = ContentRuntime(content, mirror)
        manager = ImageGCManager(GCPolicy(), runtime, began=0)
        # Sweeps a minute apart each see one image in use: a, then c, b and d. e is in use
        # when GC runs, so the order of eviction is a, c, b, d.
        for minute, name in enumerate(["gc-a", "gc-c", "gc-b", "gc-d"], start=1):
            manager.detect(minute * MINUTE, {ids[name]})
        # The disk at 90 %: GC must free 10 % of it (down to 80 %), which we make
        # size(a) + size(c) / 2: more than a alone, less than a and c.
        capacity = 10 * (size["gc-a"] + size["gc-c"] // 2)
        content.capacity = capacity
        content.other_usage = capacity * 9 // 10 - content.bytes_on_disk()
        assert content.other_usage > 0

        run = manager.garbage_collect(10 * MINUTE, {ids["gc-e"]})

        assert run.error is None
        assert run.usage_percent == 90
        assert size["gc-a"] < run.amount_to_free <= size["gc-a"] + size["gc-c"]
        assert [r.image_id for r in run.removed] == [ids["gc-a"], ids["gc-c"]]
        assert run.freed == size["gc-a"] + size["gc-c"]
        base, own_a = pulled["gc-a"].layers
        # a's base layer stays: b still uses it. Everything else of a and c is gone.
        assert run.removed[0].released == size["gc-a"] - base[1]
        assert run.removed[1].released == size["gc-c"]
        assert content.has_blob(base[0])
        for digest in [own_a[0], pulled["gc-a"].config, pulled["gc-a"].manifest_digest]:
            assert not content.has_blob(digest)
            assert not content.blob_path(digest).exists()
        for digest in blobs_of(pulled["gc-c"]):
            assert not content.blob_path(digest).exists()
        assert [i.id for i in content.list_images()] == sorted(
            ids[n] for n in ("gc-b", "gc-d", "gc-e")
        )
        for name in ("gc-b", "gc-d", "gc-e"):
            assert all(content.has_blob(d) for d in blobs_of(pulled[name]))
        # The node's view follows once the run is settled on the loop: a and c are gone.
        assert len(mirror) == 5
        runtime.settle()
        assert {r.id for r in mirror.images()} == {ids[n] for n in ("gc-b", "gc-d", "gc-e")}
        # Usage is measured on disk again: what was freed is what the blobs took.
        fs = content.image_fs_stats()
        assert capacity - fs.available == capacity * 9 // 10 - run.released
        assert content.bytes_on_disk() == content.rescan()

        # The base layer goes with the last image that uses it.
        released = runtime.remove_image(ids["gc-b"])
        assert released == size["gc-b"]
        assert not content.blob_path(base[0]).exists()
        content.close()


class TestDaemonGC:
    """The daemon with `registry.type: oci` collects on its real content store."""

    async def test_unused_image_removed_from_disk_and_node(
        self, seeded: Seeded, tmp_path: Path
    ) -> None:
        images = {name: f"{seeded.open.host}/demo/{name}:v1" for name in ("big", "tamper", "tiny")}
        # 16 MiB of which 12 MiB are other writers': the three images (about 2.2 MB) bring the
        # disk over 85 %, and freeing down to 80 % needs less than `big` alone. A minimum GC
        # age of 1ns (0s would be the default 2m, as in the kubelet): the images were first
        # detected by the first run, which comes before the second.
        node = {"imageFs": {"capacity": "16Mi", "otherUsage": "12Mi"}}
        kubelet = {"imageMinimumGCAge": "1ns"}
        async with start_daemon(tmp_path, kubelet=kubelet, node=node) as (daemon, state):
            for name, image in images.items():
                await daemon.api("POST", "/api/v1/namespaces/default/pods", pod(name, image))
            for name in images:
                await daemon.wait_event(name, "Pulled")

            # Every image in use: nothing may go, and the node says so.
            first = (await daemon.api("POST", "/debug/gc"))["lastRuns"][0]
            assert first["removed"] == []
            assert first["error"].startswith(
                "Failed to garbage collect required amount of images. Attempted to free "
            )
            assert first["error"].endswith("but only found 0 bytes eligible to free.")
            failed = await node_events(daemon, "FreeDiskSpaceFailed")
            assert [e["involvedObject"]["kind"] for e in failed] == ["Node"]

            await daemon.api("DELETE", "/api/v1/namespaces/default/pods/big")
            document = await daemon.api("POST", "/debug/gc")
            status = await daemon.api("GET", "/api/v1/nodes/kubesim-node")

        content = ContentStore(state / "content")
        try:
            stored = {image.repo_tags[0]: image for image in content.images()}
            assert set(stored) == {images["tamper"], images["tiny"]}
            for image in stored.values():
                assert all(content.has_blob(d) for d in blobs_of(image))
        finally:
            content.close()
        run = document["lastRuns"][0]
        assert run["error"] is None
        [removed] = run["removed"]
        assert removed["reason"] == "space"
        assert run["released"] == removed["size"]  # big shares nothing with the others
        layout_blobs = seeded.layout.root / "blobs" / "sha256"
        manifest = json.loads((layout_blobs / seeded.images["big"]["digest"][7:]).read_bytes())
        for blob in [seeded.images["big"]["digest"], manifest["config"]["digest"]] + [
            layer["digest"] for layer in manifest["layers"]
        ]:
            assert not (state / "content" / "blobs" / "sha256" / blob[7:]).exists()
        assert removed["id"] == manifest["config"]["digest"]
        names = {n for i in status["status"]["images"] for n in i["names"]}
        assert images["big"] not in names
        assert {images["tamper"], images["tiny"]} <= names
        assert status["status"]["capacity"]["ephemeral-storage"] == "16Mi"


class TestCrashSafety:
    """`kill -9` of the daemon while image GC removes images from its content store."""

    @pytest.mark.parametrize("after", [1, 40])
    async def test_kill_9_mid_gc_leaves_no_listed_image_without_blobs(
        self, tmp_path: Path, after: int
    ) -> None:
        state = tmp_path / "state"
        content = ContentStore(state / "content")
        hour_ago = time.time() - 3600  # set-up only: first detected long before the daemon
        for i in range(200):
            put_image(content, f"example.com/gc/app{i}:v1", i, hour_ago)
        total = content.bytes_on_disk()
        content.close()
        # Other writers fill the disk: GC has to free every image it may.
        config = daemon_config(
            tmp_path, {"imageFs": {"capacity": 10 * total, "otherUsage": 9 * total}}
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kubesim_images", "--log-level", "debug", "serve",
            "--port", "0", "--config", str(config), "--state-dir", str(state),
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "NO_PROXY": "*"},
        )  # fmt: skip
        assert process.stderr is not None
        try:
            async with asyncio.timeout(60):
                port = await serving_port(process.stderr)
                gc = asyncio.create_task(Daemon(process, port).api("POST", "/debug/gc"))
                removed = 0
                async for line in process.stderr:
                    if b'"image_removed"' in line:
                        removed += 1
                        if removed == after:
                            break
            os.kill(process.pid, signal.SIGKILL)
            await process.wait()
            await asyncio.gather(gc, return_exceptions=True)  # the connection died with it
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

        content = ContentStore(state / "content")
        try:
            left = content.images()
            assert len(left) < 200
            for image in left:
                for digest in blobs_of(image):
                    path = content.blob_path(digest)
                    assert path.exists(), (image.id, digest)
                    assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
        finally:
            content.close()


def pod(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": image}]},
    }


async def node_events(daemon: Daemon, reason: str) -> list[dict[str, Any]]:
    path = "/api/v1/namespaces/default/events?fieldSelector=involvedObject.kind=Node"
    return [e for e in (await daemon.api("GET", path))["items"] if e["reason"] == reason]


def daemon_config(tmp_path: Path, node: dict[str, Any]) -> Path:
    path = tmp_path / "daemon.yaml"
    config = {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "DaemonConfig",
        "registry": {"type": "oci", "platform": "linux/amd64"},
        "node": node,
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def serving_port(stderr: asyncio.StreamReader) -> int:
    async for line in stderr:
        doc = json.loads(line)
        if doc.get("event") == "serving":
            return int(doc["port"])
    raise AssertionError("the daemon exited before serving")
