"""`registry: {type: oci}`: its fields, and the backend adapter the puller drives."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from ocikit import Seeded

from kubesim_images.contentstore import ContentStore
from kubesim_images.errors import ConfigError
from kubesim_images.fields import Fields
from kubesim_images.oci.backend import OciRegistry
from kubesim_images.oci.config import parse_oci_registry
from kubesim_images.oci.media import Platform
from kubesim_images.oci.sink import ContentSink
from kubesim_images.pulling import pull
from kubesim_images.reference import parse_normalized
from kubesim_images.registry.base import Manifest, PullRequest
from kubesim_images.store import ImageStore


class TestConfig:
    """SPEC section 10's fields, refused with the file, the field and why."""

    def test_all_fields(self, tmp_path: Path) -> None:
        ca = tmp_path / "ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n")
        config = parse_oci_registry(
            Fields("daemon.yaml"),
            {
                "type": "oci",
                "insecure": ["127.0.0.1:5000"],
                "caFile": str(ca),
                "mirrors": {"docker.io": ["https://mirror.example.com"]},
                "platform": "linux/arm64",
                "maxConcurrentDownloads": 5,
                "store": "discard",
            },
        )
        assert config.client.insecure == frozenset({"127.0.0.1:5000"})
        assert config.client.ca_file == str(ca)
        assert dict(config.client.mirrors) == {"docker.io": ("https://mirror.example.com",)}
        assert config.client.max_concurrent_downloads == 5
        assert config.platform == Platform("linux", "arm64", "v8")
        assert config.store == "discard"

    def test_defaults(self) -> None:
        config = parse_oci_registry(Fields("daemon.yaml"), {"type": "oci"})
        assert config.client.max_concurrent_downloads == 3
        assert config.platform is None
        assert config.store == "keep"

    @pytest.mark.parametrize(
        ("doc", "message"),
        [
            ({"mirrors": {"docker.io": ["mirror.example.com"]}},
             ("daemon.yaml: registry.mirrors.docker.io[0]: must be an http:// or https:// URL, "
              "got 'mirror.example.com'")),
            ({"maxConcurrentDownloads": 0},
             "daemon.yaml: registry.maxConcurrentDownloads: must be a positive integer, got 0"),
            ({"store": "maybe"}, "daemon.yaml: registry.store: must be keep or discard, got 'maybe'"),
            ({"platform": "linux"},
             "daemon.yaml: registry.platform: 'linux': platform must be os/arch[/variant]"),
            ({"caFile": "/nonexistent/ca.pem"},
             "daemon.yaml: registry.caFile: must name a readable PEM file, got '/nonexistent/ca.pem'"),
            ({"latency": "1s"}, "daemon.yaml: registry.latency: unknown field"),
        ],
    )  # fmt: skip
    def test_refused(self, doc: dict[str, object], message: str) -> None:
        with pytest.raises(ConfigError) as caught:
            parse_oci_registry(Fields("daemon.yaml"), doc)
        assert str(caught.value).startswith(message)


@pytest.mark.integration
class TestBackend:
    """The puller's interface over a real pull: resolve, fetch into the node's content store,
    commit; the record the node's store keeps, progress while it runs."""

    @pytest.mark.parametrize("keep", ["keep", "discard"])
    async def test_pull_request_to_image_record(
        self, seeded: Seeded, tmp_path: Path, keep: str
    ) -> None:
        config = parse_oci_registry(
            Fields("test"), {"type": "oci", "platform": "linux/amd64", "store": keep}
        )
        content = ContentStore(tmp_path / "content")
        sink = ContentSink(content, keep=keep == "keep", now=lambda: 1.0e9)
        store = ImageStore()
        seen: list[tuple[float, int] | None] = []
        async with OciRegistry(config) as backend:
            ref = parse_normalized(f"{seeded.open.host}/demo/big:v1")
            request = PullRequest(pull_id=7, node="n", ref=ref)
            original = backend.client.fetch_blob

            async def spy(*args: object, **kwargs: object) -> None:
                seen.append(backend.progress(7))
                await original(*args, **kwargs)  # type: ignore[arg-type]

            backend.client.fetch_blob = spy  # type: ignore[method-assign]
            record = await pull(backend, store, sink, request)
            assert backend.progress(7) is None
            fetched, first = backend.bytes_fetched, list(seen)
            # The node has every layer now: a second pull fetches none of them again.
            again = await pull(backend, store, sink, PullRequest(8, "n", ref))
            assert again.id == record.id
            assert backend.bytes_fetched - fetched < seeded.big_layer["size"]
        assert record.repo_tags == [f"{seeded.open.host}/demo/big:v1"]
        assert [layer.digest for layer in record.layers][-1] == seeded.big_layer["digest"]
        assert record.size == sum(layer.size for layer in record.layers)
        assert store.bytes_used == record.size  # committed to the node's store by the puller
        assert first
        assert all(p is not None and p[1] >= seeded.big_layer["size"] for p in first)
        assert (content.get(record.id) is not None) == (keep == "keep")
        assert content.has_blob(seeded.big_layer["digest"]) == (keep == "keep")
        content.close()

    async def test_blobs_removed_behind_the_stores_back_are_fetched_again(
        self, seeded: Seeded, tmp_path: Path
    ) -> None:
        """`kubesim-images rmi` while the daemon runs: the node's store still holds the layers,
        the content store no longer does; the next pull fetches them again and records the
        image, rather than failing on blobs the record would name but the disk lacks."""
        config = parse_oci_registry(Fields("test"), {"type": "oci", "platform": "linux/amd64"})
        content = ContentStore(tmp_path / "content")
        sink = ContentSink(content, keep=True, now=lambda: 1.0e9)
        store = ImageStore()
        ref = parse_normalized(f"{seeded.open.host}/demo/big:v1")
        async with OciRegistry(config) as backend:
            record = await pull(backend, store, sink, PullRequest(1, "n", ref))
            content.remove(record.id)
            assert not content.has_blob(seeded.big_layer["digest"])
            fetched = backend.bytes_fetched
            again = await pull(backend, store, sink, PullRequest(2, "n", ref))
            assert backend.bytes_fetched - fetched >= seeded.big_layer["size"]
        assert again.id == record.id
        assert content.get(record.id) is not None
        assert content.has_blob(seeded.big_layer["digest"])
        assert store.bytes_used == record.size  # counted once, not twice
        content.close()

    @pytest.mark.parametrize("keep", ["keep", "discard"])
    @pytest.mark.parametrize("images", [("big", "big"), ("shared-a", "shared-b")])
    async def test_two_pulls_at_once_of_one_image_or_a_shared_layer_both_succeed(
        self, seeded: Seeded, tmp_path: Path, keep: str, images: tuple[str, str]
    ) -> None:
        """Two pods of one image (or of two images sharing a layer) on a node with parallel
        pulls: the second pull records its image after the first one has finished and (with
        `store: discard`) dropped what it wrote; the blobs the second one found or waited for
        are still there for it."""
        config = parse_oci_registry(
            Fields("test"), {"type": "oci", "platform": "linux/amd64", "store": keep}
        )
        content = ContentStore(tmp_path / "content")
        sink = _SecondCommitWaits(content, keep=keep == "keep", now=lambda: 1.0e9)
        store = ImageStore()
        refs = [parse_normalized(f"{seeded.open.host}/demo/{name}:v1") for name in images]
        async with OciRegistry(config) as backend:
            pulls = [
                asyncio.create_task(pull(backend, store, sink, PullRequest(n, "n", ref)))
                for n, ref in enumerate(refs)
            ]
            await asyncio.wait(pulls, return_when=asyncio.FIRST_COMPLETED)
            sink.first_done.set()
            records = await asyncio.gather(*pulls)
        assert sink.commits == 2
        assert (records[0].id == records[1].id) == (images[0] == images[1])
        for record in records:
            assert (content.get(record.id) is not None) == (keep == "keep")
            blobs = [record.id, *(layer.digest for layer in record.layers)]
            assert [content.has_blob(digest) for digest in blobs] == [keep == "keep"] * len(blobs)
        assert list((tmp_path / "content" / "ingest").iterdir()) == []
        content.close()


class _SecondCommitWaits(ContentSink):
    """The race made certain: the second pull to commit waits until the first pull is over."""

    def __init__(self, content: ContentStore, *, keep: bool, now: Callable[[], float]) -> None:
        super().__init__(content, keep=keep, now=now)
        self.commits = 0
        self.first_done = asyncio.Event()

    async def commit(self, manifest: Manifest) -> None:
        self.commits += 1
        if self.commits == 2:
            await self.first_done.wait()
        await super().commit(manifest)
