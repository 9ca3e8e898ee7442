"""Real registries for tests: OCI layouts written here, seeded with skopeo into the CNCF
distribution registry (Debian `docker-registry`) started on a free loopback port.

`Registry` runs one registry process over a storage directory; several may share one storage
(an open one seeds it, a Basic or token-protected one guards the same content). Readiness is
the registry's own `listening on` log line, never a poll. `TokenServer` is a Bearer token
realm (ES256 JWTs with an `x5c` chain the registry verifies against its `rootcertbundle`);
`Proxy` sits in front of a registry to cut or hold a blob mid-transfer.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gzip
import hashlib
import io
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import ClientSession, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REGISTRY_BIN = "/usr/bin/docker-registry"
HOST = "127.0.0.1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
USER, PASSWORD = "alice", "s3cret"


def require_tools() -> None:
    """The registry and skopeo must be installed; in CI (env CI set) their absence fails."""
    missing = [
        name
        for name, path in (
            ("docker-registry", REGISTRY_BIN),
            ("skopeo", shutil.which("skopeo")),
            ("htpasswd", shutil.which("htpasswd")),
        )
        if not path or not Path(path).exists()
    ]
    if missing:
        why = "apt-get install docker-registry skopeo apache2-utils (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} not installed, and CI must have them: {why}")
        pytest.skip(f"!!! {', '.join(missing)} NOT FOUND: {why} — THESE TESTS DID NOT RUN !!!")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- OCI layouts ------------------------------------------------------------------------------
@dataclass
class Layout:
    """An OCI image layout on disk that skopeo can copy from (`oci:DIR:TAG`)."""

    root: Path
    refs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self._write_index()

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = sha256(data)
        path = self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")
        if not path.exists():
            path.write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def layer(self, files: dict[str, bytes]) -> tuple[dict[str, Any], str]:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, content in sorted(files.items()):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(content), 0, 0o644
                tar.addfile(info, io.BytesIO(content))
        data = gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)
        desc = self.blob(data, "application/vnd.oci.image.layer.v1.tar+gzip")
        return desc, sha256(raw.getvalue())

    def image(
        self, layers: Iterable[dict[str, bytes]], arch: str = "amd64", variant: str = ""
    ) -> dict[str, Any]:
        built = [self.layer(files) for files in layers]
        config: dict[str, Any] = {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in built]},
        }
        platform = {"architecture": arch, "os": "linux"}
        if variant:
            config["variant"] = platform["variant"] = variant
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.blob(
                json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"
            ),
            "layers": [desc for desc, _ in built],
        }
        desc = self.blob(json.dumps(manifest).encode(), OCI_MANIFEST)
        desc["platform"] = platform
        return desc

    def index(self, manifests: list[dict[str, Any]]) -> dict[str, Any]:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        return self.blob(json.dumps(doc).encode(), OCI_INDEX)

    def tag(self, name: str, desc: dict[str, Any]) -> None:
        entry = {k: v for k, v in desc.items() if k != "platform"}
        entry["annotations"] = {"org.opencontainers.image.ref.name": name}
        self.refs[name] = entry
        self._write_index()

    def _write_index(self) -> None:
        doc = {"schemaVersion": 2, "manifests": list(self.refs.values())}
        (self.root / "index.json").write_text(json.dumps(doc))


def skopeo_copy(layout: Layout, tag: str, dest: str, *extra: str) -> None:
    subprocess.run(
        [
            "skopeo",
            "copy",
            "-q",
            "--dest-tls-verify=false",
            *extra,
            f"oci:{layout.root}:{tag}",
            f"docker://{dest}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


@dataclass
class Seeded:
    """The session's registry storage, seeded once, and what the tests need to know."""

    open: Registry
    layout: Layout
    images: dict[str, dict[str, Any]]  # name -> the descriptor skopeo copied
    big_layer: dict[str, Any]
    tamper_layer: dict[str, Any]


# -- the registry process ---------------------------------------------------------------------
class Registry:
    """`docker-registry serve` on a free loopback port; `auth` is the config's auth section."""

    def __init__(
        self,
        workdir: Path,
        storage: Path,
        auth: dict[str, Any] | None = None,
        tls: tuple[Path, Path] | None = None,  # (certificate, key): serve HTTPS
    ) -> None:
        self.port = free_port()
        self.host = f"{HOST}:{self.port}"
        self.storage = storage
        config = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "local-test-only"},
        }
        if auth:
            config["auth"] = auth
        if tls:
            config["http"]["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}  # type: ignore[index]
        self.config = workdir / f"registry-{self.port}.json"  # YAML is a superset of JSON
        self.config.write_text(json.dumps(config))
        self.log: list[str] = []
        # setpriv (util-linux): SIGTERM when the test process dies, so a crashed run leaves
        # no registry behind.
        guard = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []
        self.process = subprocess.Popen(
            [*guard, REGISTRY_BIN, "serve", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:  # blocks until the line, or EOF if it died
            self.log.append(line)
            if "listening on" in line:
                break
        else:
            pytest.fail(f"docker-registry did not start:\n{''.join(self.log)}")
        # Keep draining: a full pipe would stall the registry.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)

    def blob_data(self, digest: str) -> Path:
        hex_ = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


# -- TLS -------------------------------------------------------------------------------------
def make_tls(workdir: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) PEM files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubesim test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = workdir / "ca.pem", workdir / "server.pem", workdir / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


# -- a Bearer token realm ---------------------------------------------------------------------
class TokenServer:
    """Issues registry tokens: full pull/push for alice, an empty grant to anyone else."""

    service = "kubesim-test-registry"
    issuer = "kubesim-test-issuer"

    def __init__(self, workdir: Path) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubesim test token signer")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_file = workdir / "token-signer.pem"
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.requests: list[dict[str, str]] = []
        self.port = free_port()
        self.realm = f"http://{HOST}:{self.port}/token"
        self._runner: web.AppRunner | None = None

    def auth_config(self) -> dict[str, Any]:
        return {
            "token": {
                "realm": self.realm,
                "service": self.service,
                "issuer": self.issuer,
                "rootcertbundle": str(self.cert_file),
            }
        }

    def start(self) -> None:
        """Serve from a thread of its own, so one realm outlives the tests' event loops."""
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_get("/token", self._token)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, HOST, self.port).start()
            started.set()

        def run() -> None:
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="token-server")
        self._thread.start()
        assert started.wait(timeout=30), "the token server did not start"

    def stop(self) -> None:
        async def cleanup() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    async def _token(self, request: web.Request) -> web.Response:
        scope = request.query.get("scope", "")
        header = request.headers.get("Authorization", "")
        self.requests.append({"scope": scope, "authorization": header.split(" ")[0]})
        user = ""
        if header.startswith("Basic "):
            name, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            if (name, secret) != (USER, PASSWORD):
                return web.json_response({"details": "bad credentials"}, status=401)
            user = name
        access = []
        kind, _, rest = scope.partition(":")
        repo, _, actions = rest.rpartition(":")
        if user and kind == "repository":
            access.append({"type": "repository", "name": repo, "actions": actions.split(",")})
        now = int(dt.datetime.now(dt.UTC).timestamp())
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": os.urandom(8).hex(),
            "access": access,
        }
        token = jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": [self._x5c]})
        return web.json_response({"token": token, "expires_in": 300})


# -- a proxy that cuts or holds blobs ---------------------------------------------------------
@dataclass
class BlobRule:
    digest: str
    after: int  # bytes of the blob's body to send first
    cut: bool = False  # then drop the connection (once)
    hold: bool = False  # then wait until `release` is set
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    fired: int = 0


class Proxy:
    """HTTP forwarder to a registry; records requests and applies `BlobRule`s."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.host = f"{HOST}:{self.port}"
        self.rules: dict[str, BlobRule] = {}
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Range)
        self.blobs_in_flight = 0
        self.peak_blobs_in_flight = 0
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    async def start(self) -> None:
        self._session = ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self.port).start()

    async def stop(self) -> None:
        for rule in self.rules.values():
            rule.release.set()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, request.headers.get("Range", "")))
        if "/blobs/" not in request.path:
            return await self._relay(request)
        self.blobs_in_flight += 1
        self.peak_blobs_in_flight = max(self.peak_blobs_in_flight, self.blobs_in_flight)
        try:
            return await self._relay(request)
        finally:
            self.blobs_in_flight -= 1

    async def _relay(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        url = f"http://{self.upstream}{request.path_qs}"
        async with self._session.request(
            request.method, url, headers=headers, allow_redirects=False
        ) as upstream:
            out = web.StreamResponse(status=upstream.status)
            for key in (
                "Content-Type",
                "Content-Length",
                "Content-Range",
                "Docker-Content-Digest",
                "WWW-Authenticate",
                "Accept-Ranges",
                "Location",
            ):
                if key in upstream.headers:
                    out.headers[key] = upstream.headers[key]
            await out.prepare(request)
            rule = next(
                (r for d, r in self.rules.items() if request.path.endswith(f"/blobs/{d}")), None
            )
            sent = 0
            async for received in upstream.content.iter_chunked(16 << 10):
                chunk = received
                if rule is not None and rule.fired == 0 and sent + len(chunk) >= rule.after:
                    head = chunk[: rule.after - sent]
                    if head:
                        await out.write(head)
                    rule.fired += 1
                    rule.reached.set()
                    if rule.cut:
                        assert request.transport is not None
                        request.transport.close()
                        return out
                    await rule.release.wait()
                    chunk = chunk[len(head) :]
                sent += len(chunk)
                await out.write(chunk)
            await out.write_eof()
            return out
