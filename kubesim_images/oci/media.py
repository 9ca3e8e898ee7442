"""Manifests, indexes and platforms: the pure part of resolving an image.

Four manifest types are accepted, as containerd asks for them: OCI index and image manifest,
Docker manifest list and schema 2 manifest. An index resolves to the one manifest whose
platform matches (os, architecture, and variant, with containerd's normalisation: `aarch64` is
`arm64`, whose default variant is `v8`; `x86_64` is `amd64`), or fails with containerd's
`no match for platform in manifest`.
"""

from __future__ import annotations

import json
import platform as host_platform
from dataclasses import dataclass
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
# Every type we can use, as one Accept header (distribution answers 404 for an OCI manifest
# when the OCI type is missing from Accept).
ACCEPT = f"{OCI_INDEX}, {DOCKER_LIST}, {OCI_MANIFEST}, {DOCKER_MANIFEST}"

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}


class ManifestError(ValueError):
    """A manifest that cannot be used (malformed, or of a type we did not ask for)."""


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`os/arch[/variant]`, normalised as containerd's `platforms.Parse` does."""
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"{text!r}: platform must be os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "").normalised()

    @classmethod
    def host(cls) -> Platform:
        machine = host_platform.machine().lower()
        return cls("linux", machine).normalised()

    def normalised(self) -> Platform:
        arch = _ARCH_ALIASES.get(self.architecture, self.architecture)
        variant = self.variant
        if arch == "arm64" and variant in {"", "8"}:
            variant = "v8"
        elif arch == "arm" and variant in {"", "7"}:
            variant = "v7"
        elif arch == "amd64" and variant == "v1":
            variant = ""
        return Platform(self.os, arch, variant)

    def matches(self, other: Platform) -> bool:
        return self.normalised() == other.normalised()

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """An image manifest: its config and layers."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True, slots=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def parse(body: bytes, content_type: str) -> Manifest | Index:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"invalid manifest: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("invalid manifest: not a JSON object")
    media_type = content_type.split(";", maxsplit=1)[0].strip()
    if media_type not in INDEX_TYPES | MANIFEST_TYPES:
        # Some registries answer application/json: trust the document's own mediaType then.
        media_type = str(doc.get("mediaType") or "")
        if not media_type:
            media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if media_type in INDEX_TYPES:
        return Index(media_type, tuple(_descriptor(d) for d in _list(doc, "manifests")))
    if media_type in MANIFEST_TYPES:
        config = doc.get("config")
        if not isinstance(config, dict):
            raise ManifestError("invalid manifest: no config descriptor")
        layers = tuple(_descriptor(d) for d in _list(doc, "layers"))
        return Manifest(media_type, _descriptor(config), layers)
    raise ManifestError(f"unsupported manifest media type {media_type!r}")


def select(index: Index, wanted: Platform) -> Descriptor | None:
    """The first manifest for `wanted`; an entry without a platform never matches."""
    for descriptor in index.manifests:
        if descriptor.platform is not None and descriptor.platform.matches(wanted):
            return descriptor
    return None


def _list(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ManifestError(f"invalid manifest: {key} must be a list of descriptors")
    return value


def _descriptor(doc: dict[str, Any]) -> Descriptor:
    digest, size = doc.get("digest"), doc.get("size")
    if not isinstance(digest, str) or not isinstance(size, int) or size < 0:
        raise ManifestError("invalid manifest: descriptor without digest or size")
    plat = doc.get("platform")
    platform = None
    if isinstance(plat, dict):
        platform = Platform(
            str(plat.get("os", "")), str(plat.get("architecture", "")), str(plat.get("variant", ""))
        )
    return Descriptor(str(doc.get("mediaType", "")), digest, size, platform)
