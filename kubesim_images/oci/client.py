"""The HTTP side of the distribution API: endpoints, auth retries, manifests and blob streams.

One `aiohttp.ClientSession` (one connection pool) serves every request of a client. A registry
host is reached through its configured mirrors first, in order, then itself, as containerd's
hosts config orders them; HTTPS with the system CAs plus an optional CA file, and plain HTTP
only for hosts listed insecure and loopback, only when they answer TLS in plain HTTP
(containerd's HTTP fallback: a certificate we do not trust is refused, never downgraded). A 401
teaches the authorizer the registry's challenge and the request is retried once with
credentials; a 429 is retried after its `Retry-After` (bounded). Redirects (registries send
blobs to storage) are followed by aiohttp, which drops `Authorization` when the origin changes.
Blobs stream into a content-store ingest; a connection cut mid-blob is resumed with `Range`
from the bytes already written and hashed. aiohttp's errors end here: they leave as
`RegistryError`s worded by `registryerrors`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Self

import aiohttp

from kubesim_images import registryerrors
from kubesim_images.contentstore import BlobWriter, ContentError
from kubesim_images.errors import RegistryError
from kubesim_images.keyring import Credential
from kubesim_images.logging import get_logger
from kubesim_images.oci.auth import AuthError, Authorizer
from kubesim_images.oci.media import ACCEPT, Descriptor
from kubesim_images.oci.tls import tls_context
from kubesim_images.oci.writebehind import WriteBehind
from kubesim_images.reference import ImageReference

_MAX_MANIFEST_BYTES = 4 << 20  # containerd's limit: a manifest is metadata, not content
_USER_AGENT = "kubesim-images (containerd-like OCI client)"
# A paced stream's turn on its node's link: 16 ms of a 2 MiB/s link, half the bucket's smallest
# capacity (downlink.py). Smaller is fairer and costs a wake-up per chunk.
_THROTTLED_CHUNK = 32 * 1024


@dataclass(frozen=True, slots=True)
class ClientConfig:
    insecure: frozenset[str] = frozenset()  # hosts (host[:port]) allowed plain HTTP
    ca_file: str | None = None
    mirrors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # host -> base URLs
    max_concurrent_downloads: int = 3  # per pull, containerd's default
    connect_timeout: float = 30.0
    read_timeout: float = 60.0  # between two reads of a response, not for a whole blob
    max_connections: int = 32
    retries_429: int = 3
    max_retry_after: float = 30.0
    resume_attempts: int = 5


@dataclass(frozen=True, slots=True)
class Endpoint:
    base: str  # scheme://host[:port][/prefix], no trailing slash
    host: str  # for the authorizer: challenges are per host
    mirror: bool
    plain_http_allowed: bool = False  # HTTPS first; plain HTTP if the server does not speak TLS


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    endpoint: Endpoint
    body: bytes
    content_type: str
    digest: str


def registry_host(ref: ImageReference) -> str:
    return "registry-1.docker.io" if ref.domain == "docker.io" else ref.domain


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _retry_after(value: str | None, cap: float) -> float:
    if not value:
        return 1.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 1.0
        # An HTTP date: the calendar is needed here only to turn it into a delay.
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    return min(max(seconds, 0.0), cap)


class RegistryClient:
    """Talks to registries; use as `async with RegistryClient(config) as client`."""

    def __init__(
        self, config: ClientConfig | None = None, *, tls: ssl.SSLContext | None = None
    ) -> None:
        """`tls`: the context of every connection, built already (`tls.tls_context`, from the
        config's CA file); None builds it on entering."""
        self.config = config or ClientConfig()
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None
        self._authorizer: Authorizer | None = None
        # Hosts allowed plain HTTP that answered a TLS handshake in plain HTTP, as containerd's
        # HTTP fallback learns it: later requests go straight to http://.
        self._plain_http: set[str] = set()
        self.requests = 0
        self.retries = 0
        self.status_codes: Counter[int] = Counter()

    async def __aenter__(self) -> Self:
        # Our own context for every connection, never aiohttp's defaults (the pull command
        # imports aiohttp without their CAs: `startup.without_default_cas`). Loading the CAs
        # takes tens of milliseconds, in a thread rather than on the loop.
        tls = self._tls
        if tls is None:
            tls = await asyncio.to_thread(tls_context, self.config.ca_file)
        connector = aiohttp.TCPConnector(limit=self.config.max_connections, ssl=tls)
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.config.connect_timeout,
            sock_read=self.config.read_timeout,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={"User-Agent": _USER_AGENT},
            trust_env=False,  # a proxy from the environment must not see registry traffic
            auto_decompress=False,  # blobs are hashed as stored, never decoded
            # What a response may buffer before aiohttp stops reading its socket (twice this):
            # at 64 KiB, its default, a blob stream pauses and resumes the transport every
            # read or two; a socket read is at most 256 KiB. Larger only costs memory.
            read_bufsize=1 << 18,
        )
        self._authorizer = Authorizer(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    def endpoints(self, ref: ImageReference) -> list[Endpoint]:
        host = registry_host(ref)
        out = [
            Endpoint(url.rstrip("/"), url.split("://", 1)[-1].split("/", 1)[0], mirror=True)
            for url in self.config.mirrors.get(ref.domain, ())
        ]
        plain = host in self.config.insecure or is_loopback(host)
        out.append(Endpoint(f"https://{host}", host, mirror=False, plain_http_allowed=plain))
        return out

    def base(self, endpoint: Endpoint) -> str:
        """The endpoint's URL prefix, over plain HTTP once it showed it does not speak TLS."""
        if endpoint.host in self._plain_http:
            return "http://" + endpoint.base.removeprefix("https://")
        return endpoint.base

    # -- requests ------------------------------------------------------------------------------
    async def _send(
        self,
        endpoint: Endpoint,
        ref: ImageReference,
        method: str,
        url: str,
        credential: Credential | None,
        headers: Mapping[str, str],
    ) -> aiohttp.ClientResponse:
        if self._session is None or self._authorizer is None:
            raise RuntimeError("RegistryClient is used inside `async with` only")
        authorised_retry = False
        retries_429 = 0
        while True:
            sent = dict(headers)
            try:
                auth = await self._authorizer.header(endpoint.host, ref.path, credential)
            except AuthError as exc:
                raise registryerrors.access_denied(ref, str(exc)) from None
            if auth:
                sent["Authorization"] = auth
            self.requests += 1
            try:
                response = await self._session.request(method, url, headers=sent)
            except TimeoutError:
                raise registryerrors.transport_failed(
                    ref, method, url, f"dial tcp {endpoint.host}: i/o timeout"
                ) from None
            except aiohttp.ClientConnectorSSLError as exc:
                if endpoint.plain_http_allowed and _speaks_plain_http(exc):
                    self.requests -= 1  # a TLS probe, answered before any HTTP was sent
                    self._plain_http.add(endpoint.host)
                    url = "http://" + url.removeprefix("https://")
                    continue
                raise registryerrors.transport_failed(
                    ref, method, url, _describe(exc), unavailable=False
                ) from None
            except aiohttp.ClientConnectorCertificateError as exc:
                raise registryerrors.transport_failed(
                    ref, method, url, _describe(exc), unavailable=False
                ) from None
            except aiohttp.ClientConnectorError as exc:
                raise registryerrors.transport_failed(
                    ref, method, url, f"dial tcp {endpoint.host}: {_describe(exc)}"
                ) from None
            except aiohttp.ClientError as exc:
                raise registryerrors.transport_failed(
                    ref, method, url, f"read tcp {endpoint.host}: {_describe(exc)}"
                ) from None
            self.status_codes[response.status] += 1
            if response.status == 401 and not authorised_retry:
                challenge = response.headers.get("WWW-Authenticate", "")
                response.release()
                self._authorizer.forget_token(endpoint.host, ref.path)
                if self._authorizer.learn(endpoint.host, challenge):
                    authorised_retry = True
                    self.retries += 1
                    continue
                return response
            if response.status == 429 and retries_429 < self.config.retries_429:
                delay = _retry_after(
                    response.headers.get("Retry-After"), self.config.max_retry_after
                )
                response.release()
                retries_429 += 1
                self.retries += 1
                get_logger().info(
                    "registry_throttled", url=url, retry_after=delay, attempt=retries_429
                )
                await asyncio.sleep(delay)
                continue
            return response

    async def _error(
        self, ref: ImageReference, method: str, url: str, response: aiohttp.ClientResponse
    ) -> RegistryError:
        try:
            body = await response.content.read(64 << 10)
        except (aiohttp.ClientError, TimeoutError):
            body = b""
        finally:
            response.release()
        if response.status in {401, 403}:
            return registryerrors.access_denied(ref, registryerrors.server_message(body))
        return registryerrors.unexpected_status(ref, method, url, response.status, body)

    # -- manifests -----------------------------------------------------------------------------
    async def get_manifest(
        self,
        ref: ImageReference,
        reference: str,
        credential: Credential | None,
        endpoints: list[Endpoint] | None = None,
    ) -> FetchedManifest:
        """GET a manifest by tag or digest from the first endpoint that has it."""
        last: RegistryError | None = None
        for endpoint in endpoints or self.endpoints(ref):
            try:
                return await self._get_manifest(endpoint, ref, reference, credential)
            except RegistryError as exc:
                last = exc
                if not endpoint.mirror:
                    raise
        assert last is not None  # noqa: S101 - the registry itself is always the last endpoint
        raise last

    async def _get_manifest(
        self, endpoint: Endpoint, ref: ImageReference, reference: str, credential: Credential | None
    ) -> FetchedManifest:
        url = f"{self.base(endpoint)}/v2/{ref.path}/manifests/{reference}"
        response = await self._send(endpoint, ref, "GET", url, credential, {"Accept": ACCEPT})
        url = self.base(endpoint) + "/v2/" + url.split("/v2/", 1)[1]  # after an HTTP fallback
        if response.status == 404:
            response.release()
            raise registryerrors.not_found(ref)
        if response.status != 200:
            raise await self._error(ref, "GET", url, response)
        try:
            body = await response.content.read(_MAX_MANIFEST_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise registryerrors.transport_failed(
                ref, "GET", url, f"read tcp {endpoint.host}: {_describe(exc)}"
            ) from None
        finally:
            response.release()
        if len(body) > _MAX_MANIFEST_BYTES:
            raise registryerrors.content_failed(
                ref, f"manifest too large: over {_MAX_MANIFEST_BYTES} bytes"
            )
        # The digest is ours to compute: Docker-Content-Digest is the server's word only.
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise registryerrors.content_failed(
                ref, f"manifest digest mismatch: got {digest}, expected {reference}"
            )
        content_type = response.headers.get("Content-Type", "")
        return FetchedManifest(endpoint, body, content_type, digest)

    # -- blobs ---------------------------------------------------------------------------------
    async def fetch_blob(
        self,
        ref: ImageReference,
        descriptor: Descriptor,
        ingest: BlobWriter,
        credential: Credential | None,
        endpoints: list[Endpoint],
        on_bytes: Callable[[int], None] = lambda _n: None,
        throttle: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        """Stream one blob into `ingest`, resuming with Range after a cut; the caller commits.

        `throttle` (a node's downlink) is awaited for every chunk before it is written.
        """
        if descriptor.size and ingest.offset == descriptor.size:
            return  # complete before an earlier process died, not yet committed: commit it
        attempts = 0
        endpoint_index = 0
        while True:
            endpoint = endpoints[endpoint_index]
            url = f"{self.base(endpoint)}/v2/{ref.path}/blobs/{descriptor.digest}"
            headers = {"Range": f"bytes={ingest.offset}-"} if ingest.offset else {}
            try:
                await self._stream(
                    endpoint, ref, url, descriptor, ingest, credential, headers, on_bytes, throttle
                )
            except _Interrupted as cut:
                attempts += 1
                if attempts > self.config.resume_attempts:
                    raise registryerrors.content_failed(
                        ref, f"failed to copy: httpReadSeeker: failed open: {cut}"
                    ) from None
                self.retries += 1
                get_logger().info(
                    "blob_interrupted",
                    digest=descriptor.digest,
                    offset=ingest.offset,
                    reason=str(cut),
                    attempt=attempts,
                )
                await asyncio.sleep(min(0.05 * 2**attempts, 2.0))
                continue
            except RegistryError:
                if endpoint_index + 1 < len(endpoints):
                    get_logger().info(
                        "blob_next_host", digest=descriptor.digest, failed=endpoint.base
                    )
                    endpoint_index += 1  # this mirror lacks it: the next host may have it
                    continue
                raise
            return

    async def _stream(
        self,
        endpoint: Endpoint,
        ref: ImageReference,
        url: str,
        descriptor: Descriptor,
        ingest: BlobWriter,
        credential: Credential | None,
        headers: Mapping[str, str],
        on_bytes: Callable[[int], None],
        throttle: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        try:
            response = await self._send(endpoint, ref, "GET", url, credential, headers)
            url = self.base(endpoint) + "/v2/" + url.split("/v2/", 1)[1]  # after an HTTP fallback
        except RegistryError as exc:
            if exc.unavailable:
                raise _Interrupted(str(exc)) from None
            raise
        try:
            if response.status == 206 and ingest.offset:
                start = _content_range_start(response.headers.get("Content-Range", ""))
                if start != ingest.offset:
                    on_bytes(-ingest.offset)
                    ingest.restart()
                    raise _Interrupted("the server resumed at the wrong offset")
            elif response.status == 200:
                if ingest.offset:  # Range ignored: the whole blob comes again
                    on_bytes(-ingest.offset)
                    ingest.restart()
            elif response.status == 416 and ingest.offset:
                on_bytes(-ingest.offset)  # our partial copy is not a prefix of theirs
                ingest.restart()
                raise _Interrupted("requested range not satisfiable")
            elif response.status == 404:
                detail = f"content at {url} not found: not found"
                raise registryerrors.content_failed(
                    ref, f"failed to copy: httpReadSeeker: failed open: {detail}"
                )
            else:
                raise await self._error(ref, "GET", url, response)
            # Paced by a downlink, a stream takes at most a bounded chunk per turn: pulls
            # sharing a node's link then alternate fairly (a stream that waited longer would
            # otherwise take all it has buffered). Unpaced, it takes each buffered read as it
            # is, never joined into a copy (iter_any joins what is buffered).
            chunks = (
                _bodies(response.content)
                if throttle is None
                else response.content.iter_chunked(_THROTTLED_CHUNK)
            )
            # Hashed and written by a worker thread while the next bytes are read (see
            # writebehind), unless paced; the ingest is ours again only once it has settled.
            writer = WriteBehind(ingest, threaded=throttle is None)
            try:
                async for chunk in chunks:
                    if throttle is not None:
                        await throttle(len(chunk))
                    await writer.write(chunk)
                    on_bytes(len(chunk))
                await writer.flush()
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as exc:
                await writer.flush()  # what came before the cut is good: resume after it
                raise _Interrupted(_describe(exc)) from None
            except ContentError as exc:
                raise registryerrors.content_failed(ref, str(exc)) from None
            finally:
                writer.settle()
            if ingest.offset < descriptor.size:
                raise _Interrupted("unexpected EOF")
        finally:
            response.release()


async def _bodies(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    async for data, _ in content.iter_chunks():
        if data:  # an empty one marks the end of an HTTP chunk (chunked encoding)
            yield data


class _Interrupted(Exception):
    """A blob transfer cut short; resumable."""


def _content_range_start(value: str) -> int | None:
    # "bytes 100-199/200"
    try:
        unit, _, spec = value.partition(" ")
        if unit != "bytes":
            return None
        return int(spec.split("-", 1)[0])
    except ValueError:
        return None


def _speaks_plain_http(exc: aiohttp.ClientConnectorSSLError) -> bool:
    """The server answered our TLS ClientHello in plain HTTP (OpenSSL's words for it)."""
    reason = getattr(exc.os_error, "reason", "")
    return reason in {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        message = getattr(cert_error, "verify_message", "") or str(cert_error)
        if message in {"unable to get local issuer certificate", "self-signed certificate",
                       "self signed certificate in certificate chain"}:  # fmt: skip
            message = "certificate signed by unknown authority"
        return f"tls: failed to verify certificate: x509: {message}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return f"tls: {getattr(exc.os_error, 'reason', '') or exc.os_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, ConnectionRefusedError):
            return "connect: connection refused"
        return f"connect: {cause.strerror or cause}" if isinstance(cause, OSError) else str(cause)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "read: connection reset by peer"
    if isinstance(exc, TimeoutError):
        return "i/o timeout"
    return type(exc).__name__
