"""One real pull: resolve the reference, pick the platform, fetch what is missing, record it.

The order is what keeps a crash harmless: manifests, config and layers are each committed to
the content store as verified blobs first (those already there are shared, not fetched), and
the image record that names them is written last, in one transaction. At most
`max_concurrent_downloads` blobs stream at once per pull; a blob another pull in this process is
already fetching is waited for rather than fetched twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Collection
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, Self

from kubesim_images import registryerrors
from kubesim_images.contentstore import BlobWriter, ContentError, ContentStore, StoredImage
from kubesim_images.errors import RegistryError
from kubesim_images.keyring import Credential
from kubesim_images.logging import enabled, get_logger
from kubesim_images.oci import media
from kubesim_images.oci.client import Endpoint, FetchedManifest, RegistryClient
from kubesim_images.reference import DEFAULT_TAG, ImageReference


class BlobStore(Protocol):
    """Where fetched blobs go: the content store itself (the CLI), or a node's sink (the
    puller's, `registry.base.LayerSink`)."""

    def has_blob(self, digest: str) -> bool: ...

    def downloading(self, digest: str) -> AbstractAsyncContextManager[None]: ...

    def open_ingest(self, digest: str, size: int) -> BlobWriter: ...


Progress = Callable[[int, int], None]  # (bytes done, bytes to fetch)
Throttle = Callable[[int], Awaitable[None]]  # a node's downlink: awaited per chunk


@dataclass(frozen=True, slots=True)
class PullResult:
    image: StoredImage
    repo_digest: str
    fetched_bytes: int  # what came over the network (blobs already stored are not fetched)


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a reference names for one platform: the backend-neutral half of a pull."""

    ref: ImageReference  # with its default tag applied
    manifests: tuple[FetchedManifest, ...]  # the tag's (index or manifest), then the platform's
    manifest: media.Manifest
    platform: str  # the index entry's, or the one asked for
    endpoints: tuple[Endpoint, ...]  # the one that answered first

    @property
    def repo_digest(self) -> str:
        return f"{self.ref.name}@{self.manifests[0].digest}"

    @property
    def blobs(self) -> tuple[media.Descriptor, ...]:
        return (self.manifest.config, *self.manifest.layers)


async def resolve(
    client: RegistryClient,
    ref: ImageReference,
    *,
    credential: Credential | None = None,
    platform: media.Platform | None = None,
) -> Resolved:
    """Reference (+ credential) -> the platform's manifest: config, layers and sizes."""
    wanted = (platform or media.Platform.host()).normalised()
    ref = ref.with_default_tag()
    top = await client.get_manifest(ref, ref.digest or ref.tag or DEFAULT_TAG, credential)
    endpoints = (top.endpoint, *[e for e in client.endpoints(ref) if e != top.endpoint])
    manifests = [top]
    parsed = _parse(ref, top)
    chosen = str(wanted)
    if isinstance(parsed, media.Index):
        descriptor = media.select(parsed, wanted)
        if descriptor is None:
            raise registryerrors.no_platform(ref)
        assert descriptor.platform is not None  # noqa: S101 - select only matches platforms
        chosen = str(descriptor.platform.normalised())
        sub = await client.get_manifest(ref, descriptor.digest, credential, list(endpoints))
        manifests.append(sub)
        parsed = _parse(ref, sub)
        if not isinstance(parsed, media.Manifest):
            raise registryerrors.content_failed(ref, "an index entry is not an image manifest")
    return Resolved(ref, tuple(manifests), parsed, chosen, endpoints)


async def fetch(
    client: RegistryClient,
    store: BlobStore,
    resolved: Resolved,
    *,
    credential: Credential | None = None,
    progress: Progress | None = None,
    throttle: Throttle | None = None,
    layers: Collection[str] | None = None,
) -> int:
    """The manifests, the config and the layers (all, or those in `layers`) the store lacks,
    verified and committed; returns the bytes fetched over the network."""
    ref = resolved.ref
    wanted = [
        d
        for d in resolved.blobs
        if layers is None or d is resolved.manifest.config or d.digest in layers
    ]
    missing = {d.digest: d for d in wanted if not store.has_blob(d.digest)}
    total = sum(d.size for d in missing.values())
    done = 0  # for the progress bar
    network = 0  # over the network, by this pull

    def credit(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    def on_bytes(n: int) -> None:
        nonlocal network
        network += n
        credit(n)

    if progress is not None:
        progress(0, total)
    limit = asyncio.Semaphore(max(1, client.config.max_concurrent_downloads))
    endpoints = list(resolved.endpoints)
    try:
        async with asyncio.TaskGroup() as group:
            # The manifests, already in memory, are written while the blobs stream: nothing
            # names them before `record`, which runs once all of this is done.
            for fetched in resolved.manifests:
                group.create_task(
                    _store_bytes(store, ref, fetched.digest, fetched.body),
                    name=f"store {fetched.digest[:19]}",
                )
            for descriptor in missing.values():
                group.create_task(
                    _fetch(
                        client,
                        store,
                        ref,
                        descriptor,
                        credential,
                        endpoints,
                        limit,
                        on_bytes,
                        credit,
                        throttle,
                    ),
                    name=f"fetch {descriptor.digest[:19]}",
                )
    except BaseExceptionGroup as failed:
        # Several blobs may fail together (a registry going away); the first one speaks.
        known = [e for e in failed.exceptions if isinstance(e, RegistryError)]
        if known:
            raise known[0] from None
        raise
    return network


async def record(
    store: ContentStore, resolved: Resolved, *, now: float, partial: bool = False
) -> StoredImage:
    """Name the image once all its blobs are committed (the last step: see the module doc).

    `partial` names it with the blobs the store holds (a store that keeps nothing: the record
    is dropped at once, with what this pull wrote, and layers it did not fetch are not there).
    """
    ref, manifest = resolved.ref, resolved.manifest
    try:
        config = _config_platform(store.read_blob(manifest.config.digest))
    except OSError as exc:  # pruned under us by another process
        detail = f"failed to read config {manifest.config.digest}: {os_text(exc)}"
        raise registryerrors.content_failed(ref, detail) from None
    image = StoredImage(
        id=manifest.config.digest,
        repo_tags=(f"{ref.name}:{ref.tag}",) if ref.tag else (),
        repo_digests=(resolved.repo_digest,),
        size=sum(len(m.body) for m in resolved.manifests) + sum(d.size for d in resolved.blobs),
        last_used=now,
        pinned=False,
        manifest_digest=resolved.manifests[-1].digest,
        media_type=manifest.media_type,
        platform=config or resolved.platform,
        config=manifest.config.digest,
        layers=tuple((d.digest, d.size) for d in manifest.layers),
    )
    names = [m.digest for m in resolved.manifests] + [d.digest for d in resolved.blobs]
    if partial:
        names = [name for name in names if store.has_blob(name)]
    if enabled(logging.DEBUG):  # a pull's start-up is part of its time: no logger unless needed
        get_logger(image=str(ref)).debug("image_recording", id=image.id, blobs=len(names))
    try:
        return await asyncio.to_thread(store.commit_image, image, names)
    except ContentError as exc:
        raise registryerrors.content_failed(ref, str(exc)) from None
    except OSError as exc:  # the blobs directory's fsync: the disk, as for a blob
        detail = f"failed to create image {image.id}: {os_text(exc)}"
        raise registryerrors.content_failed(ref, detail) from None


async def pull_image(
    client: RegistryClient,
    store: ContentStore,
    ref: ImageReference,
    *,
    credential: Credential | None = None,
    platform: media.Platform | None = None,
    now: float = 0.0,
    progress: Progress | None = None,
    throttle: Throttle | None = None,
) -> PullResult:
    """Resolve, fetch what is missing, record; raises `RegistryError` with containerd's texts."""
    resolved = await resolve(client, ref, credential=credential, platform=platform)
    fetched = await fetch(
        client, store, resolved, credential=credential, progress=progress, throttle=throttle
    )
    image = await record(store, resolved, now=now)
    return PullResult(image, resolved.repo_digest, fetched)


def _parse(ref: ImageReference, fetched: FetchedManifest) -> media.Manifest | media.Index:
    try:
        return media.parse(fetched.body, fetched.content_type)
    except media.ManifestError as exc:
        raise registryerrors.content_failed(ref, str(exc)) from None


async def _store_bytes(store: BlobStore, ref: ImageReference, digest: str, body: bytes) -> None:
    async with store.downloading(digest):  # another pull of this image writes it too
        if not store.has_blob(digest):
            await _write_bytes(store, ref, digest, body)


async def _write_bytes(store: BlobStore, ref: ImageReference, digest: str, body: bytes) -> None:

    def write() -> None:
        ingest = store.open_ingest(digest, len(body))
        try:
            ingest.restart()
            ingest.write(body)
            ingest.commit()
        finally:
            ingest.close()

    try:
        await asyncio.to_thread(write)
    except ContentError as exc:
        raise registryerrors.content_failed(ref, str(exc)) from None
    except OSError as exc:
        raise registryerrors.content_failed(ref, _write_failed(digest, exc)) from None


async def _fetch(
    client: RegistryClient,
    store: BlobStore,
    ref: ImageReference,
    descriptor: media.Descriptor,
    credential: Credential | None,
    endpoints: list[Endpoint],
    limit: asyncio.Semaphore,
    on_bytes: Callable[[int], None],
    credit: Callable[[int], None],
    throttle: Throttle | None,
) -> None:
    """`on_bytes` counts what comes over the network; `credit` what is done without it."""
    async with _Slot(limit) as slot, store.downloading(descriptor.digest):
        if store.has_blob(descriptor.digest):  # another pull fetched it while we waited
            credit(descriptor.size)
            return
        try:
            ingest = await _open_ingest(store, descriptor)
        except ContentError as exc:
            raise registryerrors.content_failed(ref, str(exc)) from None
        except OSError as exc:
            detail = _write_failed(descriptor.digest, exc)
            raise registryerrors.content_failed(ref, detail) from None
        try:
            if ingest.offset:
                credit(ingest.offset)  # resumed from an earlier, interrupted pull
            await client.fetch_blob(
                ref, descriptor, ingest, credential, endpoints, on_bytes, throttle
            )
            # The bytes are in: the next blob downloads while this one is fsynced and renamed
            # (the download lock is kept until then, for a pull waiting to share the blob).
            slot.release()
            await asyncio.to_thread(ingest.commit)
        except ContentError as exc:
            raise registryerrors.content_failed(ref, str(exc)) from None
        except OSError as exc:  # the disk, not the registry: full, read-only, gone
            detail = _write_failed(descriptor.digest, exc)
            raise registryerrors.content_failed(ref, detail) from None
        finally:
            ingest.close()


async def _open_ingest(store: BlobStore, descriptor: media.Descriptor) -> BlobWriter:
    """The blob's ingest, opened in a thread (it re-hashes what an earlier pull left). A pull
    cancelled meanwhile (another blob failed) does not leak the ingest the thread still opens:
    it is closed as soon as it is, which also drops its lock on the file."""
    opening = asyncio.ensure_future(
        asyncio.to_thread(store.open_ingest, descriptor.digest, descriptor.size)
    )
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_unused)
        raise


def _close_unused(opening: asyncio.Future[BlobWriter]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


class _Slot:
    """One of a pull's `max_concurrent_downloads`, held while a blob downloads and given back
    once (`release`, or on the way out). Taken before the blob's download lock: a pull holding
    a blob's lock never waits for a slot, so pulls sharing blobs cannot wait on each other in
    a circle."""

    def __init__(self, limit: asyncio.Semaphore) -> None:
        self._limit = limit
        self._held = False

    async def __aenter__(self) -> Self:
        await self._limit.acquire()
        self._held = True
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limit.release()


def os_text(exc: OSError) -> str:
    """An OS error as containerd (Go) words it - `no such file or directory` - never Python's
    `[Errno 2] ...: '/path'` repr, which names our paths and reads as a crash."""
    text = exc.strerror or (os.strerror(exc.errno) if exc.errno else "input/output error")
    return text[:1].lower() + text[1:]


def _write_failed(digest: str, exc: OSError) -> str:
    return f'failed to write "layer-{digest}": {os_text(exc)}'


def _config_platform(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(doc, dict) or not doc.get("os") or not doc.get("architecture"):
        return ""
    return str(
        media.Platform(str(doc["os"]), str(doc["architecture"]), str(doc.get("variant", "")))
    )
