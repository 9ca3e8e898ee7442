"""The OCI client's pure parts (manifests, platforms, challenges) and its HTTP behaviour
against a small in-process registry: redirects, 429 with Retry-After, mirrors, token cache."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from kubesim_images.contentstore import ContentError, ContentStore, Ingest, StoredImage
from kubesim_images.errors import RegistryError
from kubesim_images.keyring import Credential
from kubesim_images.oci import media
from kubesim_images.oci.auth import Authorizer, parse_challenges
from kubesim_images.oci.client import ClientConfig, RegistryClient
from kubesim_images.oci.pull import os_text, pull_image
from kubesim_images.reference import parse_normalized


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class TestPlatforms:
    """containerd's normalisation and index matching."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("linux/amd64", media.Platform("linux", "amd64")),
            ("linux/x86_64", media.Platform("linux", "amd64")),
            ("linux/arm64", media.Platform("linux", "arm64", "v8")),
            ("linux/aarch64", media.Platform("linux", "arm64", "v8")),
            ("Linux/ARM/7", media.Platform("linux", "arm", "v7")),
        ],
    )
    def test_parse_normalises(self, text: str, expected: media.Platform) -> None:
        assert media.Platform.parse(text) == expected

    @pytest.mark.parametrize("text", ["linux", "linux/", "a/b/c/d", ""])
    def test_parse_refuses(self, text: str) -> None:
        with pytest.raises(ValueError, match="os/arch"):
            media.Platform.parse(text)

    def test_select_matches_variant_defaults(self) -> None:
        index = media.Index(
            media.OCI_INDEX,
            (
                media.Descriptor(
                    media.OCI_MANIFEST, "sha256:" + "a" * 64, 1, media.Platform("linux", "amd64")
                ),
                media.Descriptor(
                    media.OCI_MANIFEST,
                    "sha256:" + "b" * 64,
                    1,
                    media.Platform("linux", "arm", "v6"),
                ),
                media.Descriptor(
                    media.OCI_MANIFEST,
                    "sha256:" + "c" * 64,
                    1,
                    media.Platform("linux", "arm64", "v8"),
                ),
            ),
        )
        chosen = media.select(index, media.Platform("linux", "arm64"))
        assert chosen is not None
        assert chosen.digest == "sha256:" + "c" * 64
        assert media.select(index, media.Platform("linux", "arm", "v7")) is None

    def test_parse_trusts_the_document_when_content_type_is_generic(self) -> None:
        body = json.dumps({"schemaVersion": 2, "mediaType": media.DOCKER_LIST, "manifests": []})
        parsed = media.parse(body.encode(), "application/json")
        assert isinstance(parsed, media.Index)
        assert parsed.media_type == media.DOCKER_LIST

    def test_parse_refuses_a_manifest_without_config(self) -> None:
        with pytest.raises(media.ManifestError, match="no config"):
            media.parse(b'{"layers": []}', media.OCI_MANIFEST)


class TestChallenges:
    """WWW-Authenticate parsing (RFC 7235), as registries send it."""

    def test_bearer_with_quoted_commas(self) -> None:
        header = (
            'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
            'scope="repository:a/b:pull,push"'
        )
        [challenge] = parse_challenges(header)
        assert challenge.scheme == "bearer"
        assert challenge.params == {
            "realm": "https://auth.example.com/token",
            "service": "registry.example.com",
            "scope": "repository:a/b:pull,push",
        }

    def test_basic_and_several_schemes(self) -> None:
        challenges = parse_challenges('Basic realm="x", Bearer realm="https://t/token"')
        assert [(c.scheme, c.params) for c in challenges] == [
            ("basic", {"realm": "x"}),
            ("bearer", {"realm": "https://t/token"}),
        ]


_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=12)


@given(
    scheme=st.sampled_from(["Bearer", "Basic"]),
    params=st.dictionaries(_TOKEN, st.text(max_size=30), min_size=1, max_size=4),
)
def test_challenge_round_trip(scheme: str, params: dict[str, str]) -> None:
    """Any quoted-string values, escapes included, come back as they were sent."""
    quoted = ",".join(
        '{}="{}"'.format(k, v.replace("\\", "\\\\").replace('"', '\\"')) for k, v in params.items()
    )
    [challenge] = parse_challenges(f"{scheme} {quoted}")
    assert challenge.scheme == scheme.lower()
    assert challenge.params == {k.lower(): v for k, v in params.items()}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    doc=st.dictionaries(
        st.sampled_from(["mediaType", "manifests", "config", "layers", "schemaVersion"]), _JSON
    ),
    content_type=st.sampled_from([media.OCI_INDEX, media.OCI_MANIFEST, "application/json", ""]),
)
def test_any_json_parses_or_is_refused_as_a_manifest_error(
    doc: dict[str, object], content_type: str
) -> None:
    """A registry's body never escapes as anything but ManifestError (mapped to containerd's text)."""
    with contextlib.suppress(media.ManifestError):
        media.parse(json.dumps(doc).encode(), content_type)


class FakeRegistry:
    """A tiny distribution API: one image, blobs behind a 307, scripted 429s, Bearer auth."""

    def __init__(self, *, bearer: bool = False, expires_in: int = 300) -> None:
        self.layer = b"layer bytes " * 1000
        self.config = json.dumps({"os": "linux", "architecture": "amd64"}).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": media.OCI_MANIFEST,
            "config": {
                "mediaType": "c",
                "digest": digest_of(self.config),
                "size": len(self.config),
            },
            "layers": [
                {"mediaType": "l", "digest": digest_of(self.layer), "size": len(self.layer)}
            ],
        }
        self.manifest = json.dumps(manifest).encode()
        self.too_many = 0  # answer this many manifest requests with 429 first
        self.bearer = bearer
        self.expires_in = expires_in
        self.tokens_issued = 0
        self.paths: list[str] = []
        self.has_image = True
        self.status = 200  # anything else: the manifest answers this with an errors body
        self.chunked = False  # blobs sent with chunked transfer encoding, a few HTTP chunks
        self.runner: web.AppRunner | None = None
        self.host = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v2/{repo:.+}/manifests/{ref}", self.manifests)
        app.router.add_get("/v2/{repo:.+}/blobs/{digest}", self.blobs)
        app.router.add_get("/storage/{digest}", self.storage)
        app.router.add_get("/token", self.token)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.host = f"127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def _denied(self, request: web.Request) -> web.Response | None:
        if not self.bearer or request.headers.get("Authorization") == "Bearer tok":
            return None
        challenge = f'Bearer realm="http://{self.host}/token",service="fake"'
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            status=401,
            headers={"WWW-Authenticate": challenge},
        )

    async def manifests(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        if denied := self._denied(request):
            return denied
        if self.too_many:
            self.too_many -= 1
            return web.json_response(
                {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]},
                status=429,
                headers={"Retry-After": "0"},
            )
        if not self.has_image:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)
        if self.status != 200:
            body = {"errors": [{"code": "UNAVAILABLE", "message": "maintenance"}]}
            return web.json_response(body, status=self.status)
        return web.Response(body=self.manifest, content_type=media.OCI_MANIFEST)

    async def blobs(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        if denied := self._denied(request):
            return denied
        raise web.HTTPTemporaryRedirect(f"/storage/{request.match_info['digest']}")

    async def storage(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path)
        blobs = {digest_of(self.layer): self.layer, digest_of(self.config): self.config}
        body = blobs[request.match_info["digest"]]
        if not self.chunked:
            return web.Response(body=body)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 1000):
            await response.write(body[start : start + 1000])
        await response.write_eof()
        return response

    async def token(self, request: web.Request) -> web.Response:
        self.tokens_issued += 1
        assert request.query["scope"] == "repository:demo/app:pull"
        return web.json_response({"token": "tok", "expires_in": self.expires_in})


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeRegistry]:
    registry = FakeRegistry()
    await registry.start()
    yield registry
    await registry.stop()


async def _pull(image: str, tmp_path: Path, **config: object) -> StoredImage:
    store = ContentStore(tmp_path / "content")
    try:
        async with RegistryClient(ClientConfig(**config)) as client:  # type: ignore[arg-type]
            result = await pull_image(
                client, store, parse_normalized(image), platform=media.Platform("linux", "amd64")
            )
            return result.image
    finally:
        store.close()


class TestHttp:
    """Redirects, 429s, mirrors and tokens against the fake registry."""

    async def test_blobs_follow_redirects(self, fake: FakeRegistry, tmp_path: Path) -> None:
        image = await _pull(f"{fake.host}/demo/app:v1", tmp_path)
        assert image.id == digest_of(fake.config)
        assert f"/storage/{digest_of(fake.layer)}" in fake.paths

    @pytest.mark.parametrize("step", ["open", "rename", "sync_dir"])
    async def test_a_disk_that_fails_reaches_the_error_in_containerds_words(
        self, fake: FakeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
    ) -> None:
        """Whichever step of writing the content the disk refuses, the pull's error says why
        as containerd does, never Python's `[Errno 2] ...` with our paths."""

        def refuse(*_args: object, **_kwargs: object) -> None:
            raise FileNotFoundError(2, "No such file or directory", str(tmp_path / "x.partial"))

        target = {
            "open": (ContentStore, "open_ingest"),
            "rename": (Path, "replace"),
            "sync_dir": (ContentStore, "sync_dir"),
        }[step]
        monkeypatch.setattr(*target, refuse)
        with pytest.raises(RegistryError) as info:
            await _pull(f"{fake.host}/demo/app:v1", tmp_path)
        assert str(info.value).endswith(": no such file or directory")
        assert "Errno" not in str(info.value)
        assert str(tmp_path) not in str(info.value)

    async def test_an_ingest_opening_when_the_pull_is_cancelled_is_closed(
        self, fake: FakeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The layer's ingest is still being opened (in its thread) when the pull is cancelled:
        once open, it is closed, its file and lock not left behind."""
        store = ContentStore(tmp_path / "content")
        layer = digest_of(fake.layer)
        opening, release = threading.Event(), threading.Event()
        closed = asyncio.Event()
        loop = asyncio.get_running_loop()
        open_ingest = store.open_ingest

        def slow_open(digest: str, size: int) -> Ingest:
            if digest != layer:
                return open_ingest(digest, size)
            opening.set()
            release.wait(timeout=30)
            ingest = open_ingest(digest, size)
            close = ingest.close

            def watched_close() -> None:
                close()
                loop.call_soon_threadsafe(closed.set)

            monkeypatch.setattr(ingest, "close", watched_close)
            return ingest

        monkeypatch.setattr(store, "open_ingest", slow_open)
        try:
            async with RegistryClient(ClientConfig()) as client:
                ref = parse_normalized(f"{fake.host}/demo/app:v1")
                pulling = asyncio.create_task(
                    pull_image(client, store, ref, platform=media.Platform("linux", "amd64"))
                )
                assert await asyncio.to_thread(opening.wait, 30)
                pulling.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await pulling
                release.set()
                await asyncio.wait_for(closed.wait(), timeout=30)
        finally:
            release.set()
            store.close()

    async def test_blobs_sent_in_http_chunks(self, fake: FakeRegistry, tmp_path: Path) -> None:
        fake.chunked = True
        image = await _pull(f"{fake.host}/demo/app:v1", tmp_path)
        store = ContentStore(tmp_path / "content")
        assert store.read_blob(image.layers[0][0]) == fake.layer
        store.close()

    async def test_429_is_retried_after_retry_after(
        self, fake: FakeRegistry, tmp_path: Path
    ) -> None:
        fake.too_many = 2
        image = await _pull(f"{fake.host}/demo/app:v1", tmp_path)
        assert image.id == digest_of(fake.config)
        assert fake.paths.count("/v2/demo/app/manifests/v1") == 3

    async def test_429_beyond_the_retries_is_containerds_text(
        self, fake: FakeRegistry, tmp_path: Path
    ) -> None:
        fake.too_many = 10
        image = f"{fake.host}/demo/app:v1"
        with pytest.raises(RegistryError) as caught:
            await _pull(image, tmp_path, retries_429=1)
        assert str(caught.value) == (
            f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": '
            f'failed to resolve reference "{image}": unexpected status from GET request to '
            f"http://{fake.host}/v2/demo/app/manifests/v1: 429 Too Many Requests - Server "
            "message: toomanyrequests: slow down"
        )
        assert caught.value.code == "toomanyrequests"

    @pytest.mark.parametrize(("status", "unavailable"), [(503, True), (500, False), (403, False)])
    async def test_error_bodies_map_to_the_kubelets_reasons(
        self, fake: FakeRegistry, tmp_path: Path, status: int, unavailable: bool
    ) -> None:
        fake.status = status
        image = f"{fake.host}/demo/app:v1"
        with pytest.raises(RegistryError) as caught:
            await _pull(image, tmp_path)
        assert caught.value.unavailable is unavailable
        url = f"http://{fake.host}/v2/demo/app/manifests/v1"
        if status == 403:
            detail = (
                "pull access denied, repository does not exist or may require authorization: "
                "server message: unavailable: maintenance"
            )
        else:
            line = {503: "503 Service Unavailable", 500: "500 Internal Server Error"}[status]
            detail = (
                f"unexpected status from GET request to {url}: {line} - Server message: "
                "unavailable: maintenance"
            )
        if unavailable:
            assert str(caught.value) == f"RegistryUnavailable: {detail}"
        else:
            assert str(caught.value) == (
                f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": '
                f'failed to resolve reference "{image}": {detail}'
            )

    async def test_mirror_first_then_the_registry(self, fake: FakeRegistry, tmp_path: Path) -> None:
        mirror = FakeRegistry()
        mirror.has_image = False
        await mirror.start()
        try:
            image = await _pull(
                f"{fake.host}/demo/app:v1",
                tmp_path,
                mirrors={fake.host: (f"http://{mirror.host}",)},
            )
        finally:
            await mirror.stop()
        assert mirror.paths == ["/v2/demo/app/manifests/v1"]
        assert image.id == digest_of(fake.config)

    async def test_mirror_serves_when_it_has_the_image(
        self, fake: FakeRegistry, tmp_path: Path
    ) -> None:
        mirror = FakeRegistry()
        await mirror.start()
        try:
            await _pull(
                f"{fake.host}/demo/app:v1",
                tmp_path,
                mirrors={fake.host: (f"http://{mirror.host}",)},
            )
        finally:
            await mirror.stop()
        assert "/v2/demo/app/manifests/v1" in mirror.paths
        assert fake.paths == []

    @pytest.mark.parametrize(("expires_in", "tokens"), [(300, 1), (1, 3)])
    async def test_token_cached_per_scope_until_expiry(
        self, tmp_path: Path, expires_in: int, tokens: int
    ) -> None:
        # Three authorised requests (manifest, config, layer): one token while it is valid; a
        # token that expires within the renewal margin is fetched again for each.
        fake = FakeRegistry(bearer=True, expires_in=expires_in)
        await fake.start()
        try:
            store = ContentStore(tmp_path / "content")
            async with RegistryClient(ClientConfig(max_concurrent_downloads=1)) as client:
                await pull_image(
                    client,
                    store,
                    parse_normalized(f"{fake.host}/demo/app:v1"),
                    credential=Credential("u", "p"),
                    platform=media.Platform("linux", "amd64"),
                )
            store.close()
        finally:
            await fake.stop()
        assert fake.tokens_issued == tokens

    async def test_authorizer_without_challenge_sends_nothing(self) -> None:
        async with aiohttp.ClientSession() as session:
            assert await Authorizer(session).header("h", "r", Credential("u", "p")) is None


class TestContentStore:
    """Verified commits, resumable ingests, names that move, reference-counted blobs."""

    def test_commit_refuses_wrong_bytes_and_keeps_nothing(self, tmp_path: Path) -> None:
        store = ContentStore(tmp_path)
        data = b"x" * 100
        ingest = store.open_ingest(digest_of(data), 100)
        ingest.write(b"y" * 100)
        with pytest.raises(ContentError, match="unexpected commit digest"):
            ingest.commit()
        assert not store.has_blob(digest_of(data))
        assert list(store.ingest_dir.iterdir()) == []

    def test_commit_refuses_a_short_blob_and_keeps_it_to_resume(self, tmp_path: Path) -> None:
        store = ContentStore(tmp_path)
        data = bytes(range(256)) * 10
        ingest = store.open_ingest(digest_of(data), len(data))
        ingest.write(data[:1000])
        with pytest.raises(ContentError, match="unexpected commit size 1000"):
            ingest.commit()
        resumed = store.open_ingest(digest_of(data), len(data))
        assert resumed.offset == 1000
        resumed.write(data[1000:])
        resumed.commit()
        assert store.read_blob(digest_of(data)) == data

    def test_write_beyond_size_is_refused(self, tmp_path: Path) -> None:
        store = ContentStore(tmp_path)
        ingest = store.open_ingest(digest_of(b"ab"), 2)
        with pytest.raises(ContentError, match="unexpected size 3"):
            ingest.write(b"abc")
        ingest.close()

    def _image(
        self, store: ContentStore, image_id: bytes, layers: list[bytes], tag: str
    ) -> StoredImage:
        for blob in [image_id, *layers]:
            ingest = store.open_ingest(digest_of(blob), len(blob))
            ingest.write(blob)
            ingest.commit()
        record = StoredImage(
            id=digest_of(image_id),
            repo_tags=(tag,),
            repo_digests=(),
            size=0,
            last_used=0.0,
            pinned=False,
            manifest_digest=digest_of(image_id),
            media_type=media.OCI_MANIFEST,
            platform="linux/amd64",
            config=digest_of(image_id),
            layers=tuple((digest_of(b), len(b)) for b in layers),
        )
        return store.commit_image(record, [digest_of(b) for b in [image_id, *layers]])

    def test_record_needs_every_blob(self, tmp_path: Path) -> None:
        store = ContentStore(tmp_path)
        record = StoredImage(
            id="sha256:" + "0" * 64,
            repo_tags=("a:1",),
            repo_digests=(),
            size=0,
            last_used=0.0,
            pinned=False,
            manifest_digest="",
            media_type="",
            platform="",
            config="",
            layers=(),
        )
        with pytest.raises(ContentError, match="blobs missing"):
            store.commit_image(record, ["sha256:" + "0" * 64])
        assert store.images() == []

    def test_tag_moves_to_the_newer_image_and_lookups(self, tmp_path: Path) -> None:
        store = ContentStore(tmp_path)
        old = self._image(store, b"config-1", [b"base"], "r/app:v1")
        new = self._image(store, b"config-2", [b"base", b"top"], "r/app:v1")
        assert store.lookup("r/app:v1") == new
        assert store.get(old.id) is not None
        assert store.get(old.id).repo_tags == ()  # type: ignore[union-attr]
        assert store.lookup(new.id.removeprefix("sha256:")[:12]) == new
        assert store.refcount(digest_of(b"base")) == 2
        assert store.remove(old.id) == [digest_of(b"config-1")]
        assert store.has_blob(digest_of(b"base"))

    def test_commits_from_threads_do_not_collide(self, tmp_path: Path) -> None:
        # Pulls commit from worker threads; two at once once shared a transaction and failed.
        store = ContentStore(tmp_path)
        images = [
            self._image(store, f"config-{i}".encode(), [b"base"], f"r/app:{i}") for i in range(2)
        ]
        records = [store.get(i.id) for i in images]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(30):
                futures = [
                    pool.submit(store.commit_image, r, [r.id, digest_of(b"base")])  # type: ignore[union-attr]
                    for r in records * 4
                ]
                for future in futures:
                    future.result()
        assert {i.id for i in store.images()} == {i.id for i in images}
        store.close()


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (
            FileNotFoundError(2, "No such file or directory", "ingest/x.partial"),
            "no such file or directory",
        ),
        (OSError(28, "No space left on device"), "no space left on device"),
        (PermissionError(), "input/output error"),
    ],
)
def test_an_os_error_reaches_an_event_as_containerd_words_it(error: OSError, text: str) -> None:
    assert os_text(error) == text
    assert "Errno" not in os_text(error)
