"""Real pulls from a real CNCF distribution registry: manifests, platforms, auth, verification,
resume, and the content store's consistency after kill -9."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from ocikit import PASSWORD, USER, BlobRule, Proxy, Registry, Seeded, TokenServer, free_port

from kubesim_images.contentstore import ContentStore, Ingest
from kubesim_images.errors import RegistryError
from kubesim_images.keyring import Credential
from kubesim_images.oci.client import ClientConfig, RegistryClient
from kubesim_images.oci.media import Platform
from kubesim_images.oci.pull import PullResult, pull_image
from kubesim_images.reference import parse_normalized

pytestmark = pytest.mark.integration
AMD64 = Platform("linux", "amd64")


async def pull(
    image: str,
    state_dir: Path,
    *,
    credential: Credential | None = None,
    platform: Platform = AMD64,
    **config: Any,
) -> PullResult:
    store = ContentStore(state_dir / "content")
    try:
        async with RegistryClient(ClientConfig(**config)) as client:
            return await pull_image(
                client, store, parse_normalized(image), credential=credential, platform=platform
            )
    finally:
        store.close()


def assert_consistent(state_dir: Path) -> ContentStore:
    """No blob whose bytes differ from its name; every listed image has all its blobs."""
    store = ContentStore(state_dir / "content")
    for path in store.blobs_dir.iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, path
    for image in store.images():
        for digest in [image.config, image.manifest_digest, *(d for d, _ in image.layers)]:
            assert store.has_blob(digest), (image.id, digest)
    return store


def config_of(seeded: Seeded, name: str, arch: str | None = None) -> str:
    """The config digest skopeo pushed for an image (or an index's platform entry)."""
    blobs = seeded.layout.root / "blobs" / "sha256"

    def load(digest: str) -> Any:
        return json.loads((blobs / digest.removeprefix("sha256:")).read_bytes())

    doc = load(seeded.images[name]["digest"])
    if arch is not None:
        entry = next(m for m in doc["manifests"] if m["platform"]["architecture"] == arch)
        doc = load(entry["digest"])
    return str(doc["config"]["digest"])


class TestManifests:
    """Single-arch OCI and Docker manifests, indexes and manifest lists, by tag and digest."""

    async def test_single_arch_oci_manifest(self, seeded: Seeded, state_dir: Path) -> None:
        result = await pull(f"{seeded.open.host}/demo/tiny:v1", state_dir)
        assert result.image.id == config_of(seeded, "tiny")
        assert (
            result.repo_digest == f"{seeded.open.host}/demo/tiny@{seeded.images['tiny']['digest']}"
        )
        assert result.image.repo_tags == (f"{seeded.open.host}/demo/tiny:v1",)
        store = assert_consistent(state_dir)
        assert [i.id for i in store.images()] == [result.image.id]

    async def test_docker_schema2_manifest_is_the_same_image(
        self, seeded: Seeded, state_dir: Path
    ) -> None:
        result = await pull(f"{seeded.open.host}/demo/tiny-docker:v1", state_dir)
        assert result.image.media_type == "application/vnd.docker.distribution.manifest.v2+json"
        assert result.image.id == config_of(seeded, "tiny")  # skopeo converts, config unchanged

    @pytest.mark.parametrize("repo", ["multi", "multi-docker"])
    @pytest.mark.parametrize(
        ("platform", "arch"), [("linux/amd64", "amd64"), ("linux/arm64", "arm64")]
    )
    async def test_index_resolves_to_the_platform(
        self, seeded: Seeded, state_dir: Path, repo: str, platform: str, arch: str
    ) -> None:
        result = await pull(
            f"{seeded.open.host}/demo/{repo}:v1", state_dir, platform=Platform.parse(platform)
        )
        assert result.image.id == config_of(seeded, "multi", arch)
        assert result.image.platform == str(Platform.parse(platform))
        # The repo digest names the index, as containerd records it; the image keeps the
        # platform's manifest.
        index_digest = result.repo_digest.split("@")[1]
        if repo == "multi":  # pushed as written; skopeo re-encodes the Docker list
            assert index_digest == seeded.images["multi"]["digest"]
        assert result.repo_digest == f"{seeded.open.host}/demo/{repo}@{index_digest}"
        assert result.image.manifest_digest != index_digest

    @pytest.mark.parametrize("repo", ["multi", "multi-docker"])
    async def test_missing_platform_gives_containerds_text(
        self, seeded: Seeded, state_dir: Path, repo: str
    ) -> None:
        image = f"{seeded.open.host}/demo/{repo}:v1"
        with pytest.raises(RegistryError) as caught:
            await pull(image, state_dir, platform=Platform("linux", "s390x"))
        assert str(caught.value) == (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
            "no match for platform in manifest: not found"
        )
        assert assert_consistent(state_dir).images() == []

    async def test_by_digest(self, seeded: Seeded, state_dir: Path) -> None:
        digest = seeded.images["tiny"]["digest"]
        result = await pull(f"{seeded.open.host}/demo/tiny@{digest}", state_dir)
        assert result.image.repo_tags == ()
        assert result.image.repo_digests == (f"{seeded.open.host}/demo/tiny@{digest}",)

    async def test_unknown_tag_is_not_found(self, seeded: Seeded, state_dir: Path) -> None:
        image = f"{seeded.open.host}/demo/tiny:nope"
        with pytest.raises(RegistryError) as caught:
            await pull(image, state_dir)
        assert str(caught.value) == (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
            f'failed to resolve reference "{image}": {image}: not found'
        )
        assert not caught.value.unavailable

    async def test_unreachable_registry_is_unavailable(self, state_dir: Path) -> None:
        with pytest.raises(RegistryError) as caught:
            await pull(f"127.0.0.1:{free_port()}/demo/tiny:v1", state_dir)
        assert caught.value.unavailable
        assert "connect: connection refused" in str(caught.value)


class TestSharing:
    """Layers are shared between images and counted; rmi frees only what nothing else holds."""

    async def test_shared_layer_is_fetched_once_and_kept_until_last_user(
        self, seeded: Seeded, state_dir: Path
    ) -> None:
        first = await pull(f"{seeded.open.host}/demo/shared-a:v1", state_dir)
        second = await pull(f"{seeded.open.host}/demo/shared-b:v1", state_dir)
        base = first.image.layers[0]
        assert second.image.layers[0] == base
        # The second pull fetched its own layer and config, not the shared base.
        assert second.fetched_bytes < base[1]
        store = ContentStore(state_dir / "content")
        assert store.refcount(base[0]) == 2
        store.remove(first.image.id)
        assert store.has_blob(base[0])
        assert not store.has_blob(first.image.layers[1][0])
        store.remove(second.image.id)
        assert not store.has_blob(base[0])
        assert list(store.blobs_dir.iterdir()) == []
        store.close()


class TestAuth:
    """htpasswd Basic auth and the Bearer token flow against real registries."""

    async def test_basic_auth_refuses_without_credentials(
        self, basic_registry: Registry, state_dir: Path
    ) -> None:
        image = f"{basic_registry.host}/demo/tiny:v1"
        with pytest.raises(RegistryError) as caught:
            await pull(image, state_dir)
        assert caught.value.code == "unauthorized"
        assert "pull access denied, repository does not exist or may require authorization" in str(
            caught.value
        )
        assert not caught.value.unavailable

    async def test_basic_auth_refuses_a_wrong_password(
        self, basic_registry: Registry, state_dir: Path
    ) -> None:
        with pytest.raises(RegistryError) as caught:
            await pull(
                f"{basic_registry.host}/demo/tiny:v1",
                state_dir,
                credential=Credential(USER, "wrong-pass-123"),
            )
        assert caught.value.code == "unauthorized"
        assert "wrong-pass-123" not in str(caught.value)

    async def test_basic_auth_pulls_with_credentials(
        self, seeded: Seeded, basic_registry: Registry, state_dir: Path
    ) -> None:
        result = await pull(
            f"{basic_registry.host}/demo/tiny:v1", state_dir, credential=Credential(USER, PASSWORD)
        )
        assert result.image.id == config_of(seeded, "tiny")

    async def test_bearer_token_flow(
        self, seeded: Seeded, token_registry: tuple[Registry, TokenServer], state_dir: Path
    ) -> None:
        registry, server = token_registry
        before = len(server.requests)
        result = await pull(
            f"{registry.host}/demo/big:v1", state_dir, credential=Credential(USER, PASSWORD)
        )
        assert result.image.id == config_of(seeded, "big")
        asked = server.requests[before:]
        # One token for the whole pull (manifest + config + two layers): cached per scope.
        assert asked == [{"scope": "repository:demo/big:pull", "authorization": "Basic"}]

    async def test_bearer_anonymous_token_is_refused(
        self, token_registry: tuple[Registry, TokenServer], state_dir: Path
    ) -> None:
        registry, server = token_registry
        before = len(server.requests)
        with pytest.raises(RegistryError) as caught:
            await pull(f"{registry.host}/demo/tiny:v1", state_dir)
        assert caught.value.code == "unauthorized"
        assert server.requests[before:][0]["authorization"] == ""  # anonymous token asked


class TestTls:
    """HTTPS with a configured CA; an untrusted certificate is refused, never downgraded."""

    async def test_https_with_the_ca_file(
        self, seeded: Seeded, tls_registry: tuple[Registry, Path], state_dir: Path
    ) -> None:
        registry, ca = tls_registry
        result = await pull(f"{registry.host}/demo/tiny:v1", state_dir, ca_file=str(ca))
        assert result.image.id == config_of(seeded, "tiny")

    async def test_untrusted_certificate_is_refused(
        self, tls_registry: tuple[Registry, Path], state_dir: Path
    ) -> None:
        registry, _ = tls_registry
        image = f"{registry.host}/demo/tiny:v1"
        with pytest.raises(RegistryError) as caught:
            await pull(image, state_dir)
        assert str(caught.value) == (
            f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": '
            f'failed to resolve reference "{image}": failed to do request: Get '
            f'"https://{registry.host}/v2/demo/tiny/manifests/v1": tls: failed to verify '
            "certificate: x509: certificate signed by unknown authority"
        )
        assert not caught.value.unavailable


class TestVerification:
    """Content is verified by digest before it is committed; resume and crashes stay safe."""

    async def test_tampered_blob_is_rejected(self, seeded: Seeded, state_dir: Path) -> None:
        layer = seeded.tamper_layer
        data_file = seeded.open.blob_data(layer["digest"])
        original = data_file.read_bytes()
        corrupted = bytes([original[0] ^ 0xFF]) + original[1:]
        data_file.write_bytes(corrupted)
        image = f"{seeded.open.host}/demo/tamper:v1"
        try:
            with pytest.raises(RegistryError) as caught:
                await pull(image, state_dir)
        finally:
            data_file.write_bytes(original)
        actual = "sha256:" + hashlib.sha256(corrupted).hexdigest()
        assert str(caught.value) == (
            f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": '
            f'failed commit on ref "layer-{layer["digest"]}": unexpected commit digest '
            f"{actual}, expected {layer['digest']}: failed precondition"
        )
        store = assert_consistent(state_dir)
        assert store.images() == []
        assert not store.has_blob(layer["digest"])
        # Bad bytes are not kept to resume from (other blobs cut short by the failure may be).
        assert not any(p.name.startswith(layer["digest"][7:]) for p in store.ingest_dir.iterdir())

    async def test_cut_blob_is_resumed_with_range(self, seeded: Seeded, state_dir: Path) -> None:
        layer = seeded.big_layer
        proxy = Proxy(seeded.open.host)
        rule = BlobRule(layer["digest"], after=layer["size"] // 2, cut=True)
        proxy.rules[layer["digest"]] = rule
        await proxy.start()
        try:
            result = await pull(f"{proxy.host}/demo/big:v1", state_dir)
        finally:
            await proxy.stop()
        assert rule.fired == 1
        ranges = [r for _, path, r in proxy.requests if path.endswith(layer["digest"])]
        assert ranges == ["", f"bytes={layer['size'] // 2}-"]
        assert result.image.id == config_of(seeded, "big")
        assert_consistent(state_dir)

    async def test_stalled_blob_times_out_and_resumes(
        self, seeded: Seeded, state_dir: Path
    ) -> None:
        # The proxy stalls mid-blob until the test ends; only the read timeout can move on.
        layer = seeded.big_layer
        proxy = Proxy(seeded.open.host)
        rule = BlobRule(layer["digest"], after=layer["size"] // 4, hold=True)
        proxy.rules[layer["digest"]] = rule
        await proxy.start()
        try:
            result = await pull(f"{proxy.host}/demo/big:v1", state_dir, read_timeout=0.5)
        finally:
            await proxy.stop()
        assert result.image.id == config_of(seeded, "big")
        ranges = [r for _, path, r in proxy.requests if path.endswith(layer["digest"])]
        assert ranges[0] == ""
        assert len(ranges) == 2
        assert 0 < int(ranges[1].removeprefix("bytes=").rstrip("-")) <= layer["size"] // 4

    async def test_at_most_n_blobs_at_once(self, seeded: Seeded, state_dir: Path) -> None:
        # Every blob of the image is held after its first byte; with a limit of 2, the third
        # can only be asked for once one of the first two is released.
        manifest = json.loads(
            (seeded.layout.root / "blobs/sha256" / seeded.images["big"]["digest"][7:]).read_bytes()
        )
        digests = [manifest["config"]["digest"], *(d["digest"] for d in manifest["layers"])]
        proxy = Proxy(seeded.open.host)
        rules = [BlobRule(d, after=1, hold=True) for d in digests]
        proxy.rules = {r.digest: r for r in rules}
        await proxy.start()
        try:
            task = asyncio.create_task(
                pull(f"{proxy.host}/demo/big:v1", state_dir, max_concurrent_downloads=2)
            )
            waiting = {asyncio.create_task(r.reached.wait()): r for r in rules}
            done, pending = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            while len(done) < 2:
                more, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                done |= more
            held_at_once = proxy.blobs_in_flight
            for rule in rules:
                rule.release.set()
            await task
            await asyncio.gather(*pending)
        finally:
            await proxy.stop()
        assert held_at_once == 2
        assert proxy.peak_blobs_in_flight == 2
        assert all(rule.fired == 1 for rule in rules)

    async def test_a_blob_being_committed_holds_no_download_slot(
        self, seeded: Seeded, state_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # One download at a time, and the first blob's commit (fsync, rename) does not return
        # until the next blob is asked for: it is, as the bytes were in.
        manifest = json.loads(
            (seeded.layout.root / "blobs/sha256" / seeded.images["big"]["digest"][7:]).read_bytes()
        )
        blobs = {manifest["config"]["digest"], *(d["digest"] for d in manifest["layers"])}
        proxy = Proxy(seeded.open.host)
        next_asked = threading.Event()
        forward = proxy._forward

        async def watching(request: Any) -> Any:
            if "/blobs/" in request.path and any("/blobs/" in p for _, p, _ in proxy.requests):
                next_asked.set()
            return await forward(request)

        monkeypatch.setattr(proxy, "_forward", watching)
        store = ContentStore(state_dir / "content")
        open_ingest = store.open_ingest
        waited: list[bool] = []

        def opened(digest: str, size: int) -> Ingest:
            ingest = open_ingest(digest, size)
            commit = ingest.commit

            def slow_commit() -> None:
                if digest in blobs and not waited:  # the first downloaded blob's
                    waited.append(next_asked.wait(timeout=30))
                commit()

            monkeypatch.setattr(ingest, "commit", slow_commit)
            return ingest

        monkeypatch.setattr(store, "open_ingest", opened)
        await proxy.start()
        try:
            async with RegistryClient(ClientConfig(max_concurrent_downloads=1)) as client:
                result = await pull_image(
                    client, store, parse_normalized(f"{proxy.host}/demo/big:v1"), platform=AMD64
                )
        finally:
            await proxy.stop()
            store.close()
        assert waited == [True]
        assert result.image.id == config_of(seeded, "big")
        assert proxy.peak_blobs_in_flight == 1


class TestConcurrency:
    """Two pulls in one process share the store: a blob is fetched once; a cancelled pull
    leaves a partial download the next pull resumes."""

    async def test_concurrent_pulls_fetch_a_shared_blob_once(
        self, seeded: Seeded, state_dir: Path
    ) -> None:
        proxy = Proxy(seeded.open.host)
        await proxy.start()
        store = ContentStore(state_dir / "content")
        try:
            async with RegistryClient() as client:
                refs = [
                    parse_normalized(f"{proxy.host}/demo/{n}:v1") for n in ("shared-a", "shared-b")
                ]
                a, b = await asyncio.gather(
                    *(pull_image(client, store, ref, platform=AMD64) for ref in refs)
                )
        finally:
            await proxy.stop()
            store.close()
        base = a.image.layers[0][0]
        assert b.image.layers[0][0] == base
        fetched = [path for _, path, _ in proxy.requests if path.endswith(base)]
        assert len(fetched) == 1
        store = assert_consistent(state_dir)
        # Bytes over the network are counted by the pull that fetched them, once.
        unique = dict(a.image.layers + b.image.layers)
        configs = sum(len(store.read_blob(r.image.config)) for r in (a, b))
        assert a.fetched_bytes + b.fetched_bytes == sum(unique.values()) + configs
        store.close()

    async def test_cancelled_pull_leaves_a_resumable_partial(
        self, seeded: Seeded, state_dir: Path
    ) -> None:
        layer = seeded.big_layer
        proxy = Proxy(seeded.open.host)
        rule = BlobRule(layer["digest"], after=layer["size"] // 3, hold=True)
        proxy.rules[layer["digest"]] = rule
        await proxy.start()
        try:
            task = asyncio.create_task(pull(f"{proxy.host}/demo/big:v1", state_dir))
            await rule.reached.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            store = assert_consistent(state_dir)
            assert store.images() == []
            assert not store.has_blob(layer["digest"])
            store.close()
            proxy.requests.clear()
            result = await pull(f"{proxy.host}/demo/big:v1", state_dir)
        finally:
            await proxy.stop()
        assert result.image.id == config_of(seeded, "big")
        ranges = [r for _, path, r in proxy.requests if path.endswith(layer["digest"])]
        assert len(ranges) == 1
        assert ranges[0].startswith("bytes=")
        assert 0 < int(ranges[0].removeprefix("bytes=").rstrip("-")) <= layer["size"] // 3


class TestCrashSafety:
    """kill -9 of `kubesim-images pull` mid-blob leaves a consistent store; the next pull resumes."""

    @pytest.mark.parametrize("fraction", [0.0, 0.5, 0.99])
    async def test_kill_9_mid_pull(self, seeded: Seeded, state_dir: Path, fraction: float) -> None:
        layer = seeded.big_layer
        proxy = Proxy(seeded.open.host)
        after = max(1, int(layer["size"] * fraction))
        rule = BlobRule(layer["digest"], after=after, hold=True)
        proxy.rules[layer["digest"]] = rule
        await proxy.start()
        image = f"{proxy.host}/demo/big:v1"
        command = [sys.executable, "-m", "kubesim_images", "pull", image, "--state-dir",
                   str(state_dir), "--platform", "linux/amd64", "-o", "json"]  # fmt: skip
        try:
            process = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            await asyncio.wait_for(rule.reached.wait(), timeout=60)
            os.kill(process.pid, signal.SIGKILL)
            await process.wait()
            assert process.returncode == -signal.SIGKILL
            store = assert_consistent(state_dir)
            assert store.images() == []
            assert not store.has_blob(layer["digest"])
            store.close()

            # Again, to the end: the partial download is resumed, not fetched again.
            proxy.requests.clear()
            process = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        finally:
            await proxy.stop()
        assert process.returncode == 0, err.decode()
        document = json.loads(out)
        assert document["id"] == config_of(seeded, "big")
        ranges = [r for _, path, r in proxy.requests if path.endswith(layer["digest"])]
        # What reached the disk before the kill is kept: at most `after` bytes, maybe fewer
        # (unflushed buffers die with the process), never more.
        assert len(ranges) == 1
        if ranges[0]:
            assert 0 < int(ranges[0].removeprefix("bytes=").rstrip("-")) <= after
        store = assert_consistent(state_dir)
        assert [i.id for i in store.images()] == [document["id"]]
        assert list(store.ingest_dir.iterdir()) == []
        store.close()

    async def test_kill_9_between_blobs_and_record(self, seeded: Seeded, state_dir: Path) -> None:
        """Every blob committed, the record not yet: the image is not listed, and the next pull
        needs no blob from the registry."""
        image = f"{seeded.open.host}/demo/shared-a:v1"
        command = [sys.executable, "-m", "kubesim_images", "--log-level", "debug", "pull", image,
                   "--state-dir", str(state_dir), "--platform", "linux/amd64"]  # fmt: skip
        # Hold the content database's write lock, so the record waits behind it.
        ContentStore(state_dir / "content").close()
        blocker = sqlite3.connect(state_dir / "content" / "images.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            process = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
            assert process.stderr is not None
            async with asyncio.timeout(60):
                async for line in process.stderr:
                    if b'"image_recording"' in line:
                        break
            os.kill(process.pid, signal.SIGKILL)
            await process.wait()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        store = assert_consistent(state_dir)
        assert store.images() == []
        kept = {p.name for p in store.blobs_dir.iterdir()}
        store.close()
        assert len(kept) == 4  # manifest, config, two layers: verified, committed, unnamed
        proxy = Proxy(seeded.open.host)
        await proxy.start()
        try:
            result = await pull(f"{proxy.host}/demo/shared-a:v1", state_dir)
        finally:
            await proxy.stop()
        assert [p for _, p, _ in proxy.requests if "/blobs/" in p] == []
        assert result.image.repo_tags == (f"{proxy.host}/demo/shared-a:v1",)
