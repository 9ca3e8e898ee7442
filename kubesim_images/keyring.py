"""Credential matching, as the kubelet's `credentialprovider` keyring does it.

Docker config keys (`config.json` `auths` or the older `.dockercfg`) are normalised like
`BasicDockerKeyring.Add`: scheme stripped, `/v1/` and `/v2/` meaning the bare host, and kept in
reverse lexical order so more specific paths match first. A key matches an image's repository
when ports agree, the host has as many dot-separated parts with each part matching as a glob
(`*.example.com`), and the key's path is a prefix of the repository path. `index.docker.io`
credentials serve Docker Hub images when nothing else matched. Pod pull secrets are consulted
before the node's config (`UnionDockerKeyring`).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubesim_images.errors import ConfigError
from kubesim_images.reference import ImageReference

_DEFAULT_REGISTRY_HOST = "index.docker.io"


@dataclass(frozen=True, slots=True)
class Credential:
    """A username/password (or identity token) for a registry; never logged or rendered."""

    username: str = ""
    password: str = ""
    source: str = ""  # where it came from (secret name, config file key), safe to show
    match: str = ""  # the config key that matched, safe to show

    def __repr__(self) -> str:
        return f"Credential(source={self.source!r}, match={self.match!r})"


@dataclass(frozen=True, slots=True)
class _Key:
    host: str
    port: str
    path: str

    @classmethod
    def parse(cls, schemeless: str) -> _Key:
        # Go's url.Parse("https://" + s) split by hand: urlsplit refuses bracketed hosts that
        # are not IP addresses (`[abc]:5000/app` is a valid image name), which Go accepts.
        rest = schemeless.partition("#")[0].partition("?")[0]
        authority, slash, path = rest.partition("/")
        host = authority.rpartition("@")[2]
        port = ""
        if host.startswith("["):
            end = host.find("]")
            if end != -1 and host[end + 1 :].startswith(":"):
                # net.SplitHostPort drops the brackets, so the host is globbed as `::1`.
                host, port = host[1:end], host[end + 2 :]
        elif ":" in host:
            host, _, port = host.rpartition(":")
        return cls(host, port, slash + path)


def _normalise_key(location: str) -> str | None:
    value = location if location.startswith(("https://", "http://")) else "https://" + location
    try:
        parsed = urlsplit(value)
    except ValueError:
        return None
    path = parsed.path
    if path.startswith(("/v2/", "/v1/")):
        path = path[3:]
    return parsed.netloc + path if path and path != "/" else parsed.netloc


def urls_match(glob: str, target: str) -> bool:
    """`URLsMatchStr`: port equal, same number of host parts each glob-matching, path prefix."""
    g, t = _Key.parse(glob), _Key.parse(target)
    if g.port != t.port:
        return False
    g_parts, t_parts = g.host.split("."), t.host.split(".")
    if len(g_parts) != len(t_parts) or not t.path.startswith(g.path):
        return False
    return all(fnmatch.fnmatchcase(tp, gp) for gp, tp in zip(g_parts, t_parts, strict=True))


def _is_default_registry_match(image: str) -> bool:
    first, _, rest = image.partition("/")
    if not first:
        return False
    if not rest or first in {"docker.io", "index.docker.io"}:
        return True
    return not any(c in first for c in ".:")


def _decode_auth(field: str) -> bytes:
    """`decodeDockerConfigFieldAuth`: padded (StdEncoding) when it ends in `=`, else unpadded
    (RawStdEncoding); Go's decoders skip `\\r` and `\\n` anywhere."""
    data = field.replace("\r", "").replace("\n", "")
    if not field.strip().endswith("="):
        if "=" in data or len(data) % 4 == 1:
            raise binascii.Error("illegal base64 data")
        data += "=" * (-len(data) % 4)
    return base64.b64decode(data, validate=True)


def _decode_entry(entry: Mapping[str, Any]) -> tuple[str, str]:
    username = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = _decode_auth(auth).decode()
        except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII input
            raise ConfigError("auth is not valid base64 of username:password") from None
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise ConfigError("auth must decode to username:password")
        username, password = user, secret
    # The kubelet's DockerConfigEntry has no identitytoken: such entries carry no credential.
    return username, password


_CONFIG_JSON_KEYS = frozenset(
    {
        "auths",
        "credsStore",
        "credHelpers",
        "HttpHeaders",
        "psFormat",
        "imagesFormat",
        "detachKeys",
        "proxies",
        "currentContext",
        "plugins",
        "aliases",
        "features",
    }
)


def parse_docker_config(data: Any, *, source: str) -> list[tuple[str, Credential]]:
    """(config key as written, credential) pairs from a config.json or .dockercfg document."""
    if not isinstance(data, Mapping):
        raise ConfigError("docker config must be a JSON object", source=source)
    # config.json puts credentials under `auths` beside other settings (credsStore,
    # credHelpers, ...), which the kubelet ignores; the older .dockercfg is the map itself.
    auths = data.get("auths", {}) if _CONFIG_JSON_KEYS & set(data) else data
    if auths is None:
        auths = {}
    if not isinstance(auths, Mapping):
        raise ConfigError("auths must be an object", source=source, path="auths")
    out: list[tuple[str, Credential]] = []
    for location, entry in auths.items():
        if not isinstance(entry, Mapping):
            raise ConfigError("must be an object", source=source, path=f"auths.{location}")
        try:
            username, password = _decode_entry(entry)
        except ConfigError as exc:
            raise ConfigError(exc.message, source=source, path=f"auths.{location}") from None
        out.append(
            (str(location), Credential(username, password, source=source, match=str(location)))
        )
    return out


def load_docker_config(path: str | Path) -> list[tuple[str, Credential]]:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read docker config: {exc.strerror}", source=source) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg} at line {exc.lineno}", source=source) from None
    return parse_docker_config(data, source=source)


class Keyring:
    """An ordered union of credential sets: pod secrets first, then the node's config."""

    def __init__(self, entries: Iterable[tuple[str, Credential]] = ()) -> None:
        self._creds: dict[str, list[Credential]] = {}
        for location, credential in entries:
            self.add(location, credential)

    def add(self, location: str, credential: Credential) -> None:
        key = _normalise_key(location)
        if key is None:
            return
        self._creds.setdefault(key, []).append(credential)

    def _lookup_one(self, image: str) -> list[Credential]:
        found: list[Credential] = []
        for key in sorted(self._creds, reverse=True):
            if urls_match(key, image):
                found.extend(self._creds[key])
        if not found and _is_default_registry_match(image):
            found.extend(self._creds.get(_DEFAULT_REGISTRY_HOST, []))
        return found

    def lookup(self, ref: ImageReference) -> list[Credential]:
        return self._lookup_one(ref.name)


class UnionKeyring:
    def __init__(self, *keyrings: Keyring) -> None:
        self._keyrings = keyrings

    def lookup(self, ref: ImageReference) -> list[Credential]:
        out: list[Credential] = []
        for keyring in self._keyrings:
            out.extend(keyring.lookup(ref))
        return out
