"""Image references: the grammar and normalisation of Go's ``distribution/reference``.

The kubelet runs every container image through ``ParseNormalizedNamed`` before it applies the
default tag, pull policy or credentials, and a refusal becomes an ``InvalidImageName`` event. So
this module reproduces that parser and go-digest's digest checks exactly, down to the error
texts. It is pure and allocation-light because every
pod sync asks it about every container image; results are memoised by input string.

Pinned behaviour: the 255-character limit applies to the whole name (domain/path), as our SPEC
fixes it and as distribution did before v0.6 (v0.6 counts the path only); go-digest v1.0.0 with
sha256, sha384 and sha512 available, as in the kubelet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

from kubesim_images.errors import InvalidReferenceError

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "ImageReference",
    "familiar_string",
    "parse",
    "parse_normalized",
]

DEFAULT_DOMAIN: Final = "docker.io"
DEFAULT_TAG: Final = "latest"

_LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
_OFFICIAL_REPO_PREFIX: Final = "library/"
_LOCALHOST: Final = "localhost"
_REPOSITORY_NAME_TOTAL_LENGTH_MAX: Final = 255
_CACHE_SIZE: Final = 4096

# Error texts are distribution's and go-digest's own: users grep for them.
_ERR_REFERENCE_INVALID_FORMAT: Final = "invalid reference format"
_ERR_NAME_CONTAINS_UPPERCASE: Final = "repository name must be lowercase"
_ERR_NAME_EMPTY: Final = "repository name must have at least one component"
_ERR_NAME_TOO_LONG: Final = (
    f"repository name must not be more than {_REPOSITORY_NAME_TOTAL_LENGTH_MAX} characters"
)
_ERR_DIGEST_INVALID_FORMAT: Final = "invalid checksum digest format"
_ERR_DIGEST_INVALID_LENGTH: Final = "invalid checksum digest length"
_ERR_DIGEST_UNSUPPORTED: Final = "unsupported digest algorithm"

# The fragments are regexp.go's, spelled for Python: Go's \w and [[:xdigit:]] are ASCII-only,
# whereas Python's \w is Unicode, so the classes are written out.
_ALPHANUMERIC: Final = r"[a-z0-9]+"
_SEPARATOR: Final = r"(?:[._]|__|[-]+)"
_DOMAIN_NAME_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_OPTIONAL_PORT: Final = r"(?::[0-9]+)?"
_TAG: Final = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST: Final = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}"
_IPV6_ADDRESS: Final = r"\[[a-fA-F0-9:]+\]"
_DOMAIN_NAME: Final = rf"{_DOMAIN_NAME_COMPONENT}(?:\.{_DOMAIN_NAME_COMPONENT})*"
_DOMAIN_AND_PORT: Final = rf"(?:{_DOMAIN_NAME}|{_IPV6_ADDRESS}){_OPTIONAL_PORT}"
_PATH_COMPONENT: Final = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME: Final = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

# Go matches referenceRegexp and then anchoredNameRegexp on the name; both are leftmost-first,
# so one pattern with the domain captured picks the same split in a single pass.
_REFERENCE_RE: Final = re.compile(
    rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?"
)
_IDENTIFIER_RE: Final = re.compile(r"[a-f0-9]{64}")
# go-digest's own DigestRegexp: only consulted to tell "unsupported" from "malformed".
_GO_DIGEST_RE: Final = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_LOWER_HEX_RE: Final = re.compile(r"[a-f0-9]+")
_HEX_LENGTHS: Final = {"sha256": 64, "sha384": 96, "sha512": 128}

# Python refuses int() on more than 4300 digits, and the grammar does not bound a port.
_INT_CHUNK: Final = 4000


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed reference; ``tag`` and ``digest`` are None when absent."""

    domain: str
    path: str
    tag: str | None
    digest: str | None
    # Derived once: every sync looks an image up by these, and references are shared (parsing
    # is memoised), so building them per read cost more than all the rest of a lookup.
    name: str = field(init=False, repr=False, compare=False)
    pull_ref: str = field(init=False, repr=False, compare=False)  # name@digest, or name:tag

    def __post_init__(self) -> None:
        name = f"{self.domain}/{self.path}" if self.domain else self.path
        object.__setattr__(self, "name", name)
        pull_ref = (
            f"{name}@{self.digest}"
            if self.digest is not None
            else f"{name}:{self.tag or DEFAULT_TAG}"
        )
        object.__setattr__(self, "pull_ref", pull_ref)

    @property
    def familiar_name(self) -> str:
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(_OFFICIAL_REPO_PREFIX):
            # Only a top-level official image loses "library/": Hub could nest namespaces
            # under it, and "library/a/b" must stay distinguishable from "a/b".
            remainder = path[len(_OFFICIAL_REPO_PREFIX) :]
            if "/" not in remainder:
                return remainder
        return path

    @property
    def hostname(self) -> str:
        return _split_host_port(self.domain)[0]

    @property
    def port(self) -> int | None:
        digits = _split_host_port(self.domain)[1]
        return None if digits is None else _digits_to_int(digits)

    @property
    def implied_latest(self) -> bool:
        return self.tag == DEFAULT_TAG or (self.tag is None and self.digest is None)

    def with_default_tag(self) -> ImageReference:
        if self.tag is None and self.digest is None:
            return ImageReference(self.domain, self.path, DEFAULT_TAG, None)
        return self

    def __str__(self) -> str:
        return _with_suffixes(self.name, self.tag, self.digest)


def parse_normalized(text: str) -> ImageReference:
    """``ParseNormalizedNamed``: a familiar name made fully qualified."""
    return _parse_normalized_cached(text)


def parse(text: str) -> ImageReference:
    """``Parse``: the grammar only, no defaults; ``domain`` is "" when none was written."""
    return _parse_cached(text)


def familiar_string(ref: ImageReference) -> str:
    """``FamiliarString``: what ``docker`` and ``crictl`` print."""
    return _with_suffixes(ref.familiar_name, ref.tag, ref.digest)


def _with_suffixes(name: str, tag: str | None, digest: str | None) -> str:
    text = name if tag is None else f"{name}:{tag}"
    return text if digest is None else f"{text}@{digest}"


@lru_cache(maxsize=_CACHE_SIZE)
def _parse_normalized_cached(text: str) -> ImageReference:
    if _IDENTIFIER_RE.fullmatch(text) is not None:
        raise InvalidReferenceError(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(text)
    # Go looks only up to the first ":" and so also catches "@" and anything after it in the
    # name; the message quotes exactly that slice.
    remote = remainder.partition(":")[0]
    if _go_lower(remote) != remote:
        raise InvalidReferenceError(
            f"invalid reference format: repository name ({remote}) must be lowercase"
        )
    return _parse(f"{domain}/{remainder}")


@lru_cache(maxsize=_CACHE_SIZE)
def _parse_cached(text: str) -> ImageReference:
    return _parse(text)


def _parse(text: str) -> ImageReference:
    if not text:
        raise InvalidReferenceError(_ERR_NAME_EMPTY)
    match = _REFERENCE_RE.fullmatch(text)
    if match is None:
        lowered = _go_lower(text)
        if lowered != text and _REFERENCE_RE.fullmatch(lowered) is not None:
            raise InvalidReferenceError(_ERR_NAME_CONTAINS_UPPERCASE)
        raise InvalidReferenceError(_ERR_REFERENCE_INVALID_FORMAT)
    domain, path, tag, digest = match.group(1, 2, 3, 4)
    if len(path) + (len(domain) + 1 if domain else 0) > _REPOSITORY_NAME_TOTAL_LENGTH_MAX:
        raise InvalidReferenceError(_ERR_NAME_TOO_LONG)
    if digest is not None:
        _validate_digest(digest)
    return ImageReference(domain or "", path, tag, digest)


def _validate_digest(digest: str) -> None:
    """go-digest's ``Digest.Validate`` for the hex algorithms the kubelet links in."""
    algorithm, _, encoded = digest.partition(":")
    if not algorithm or not encoded:
        raise InvalidReferenceError(_ERR_DIGEST_INVALID_FORMAT)
    length = _HEX_LENGTHS.get(algorithm)
    if length is None:
        # go-digest blames the format, not the algorithm, when the name is not even well
        # formed by its own (lowercase-only) grammar.
        if _GO_DIGEST_RE.fullmatch(digest) is None:
            raise InvalidReferenceError(_ERR_DIGEST_INVALID_FORMAT)
        raise InvalidReferenceError(_ERR_DIGEST_UNSUPPORTED)
    if len(encoded) != length:
        raise InvalidReferenceError(_ERR_DIGEST_INVALID_LENGTH)
    if _LOWER_HEX_RE.fullmatch(encoded) is None:
        raise InvalidReferenceError(_ERR_DIGEST_INVALID_FORMAT)


def _split_docker_domain(name: str) -> tuple[str, str]:
    """``splitDockerDomain``: guess whether the first component names a registry."""
    maybe_domain, slash, maybe_remote = name.partition("/")
    if not slash:
        # A lone component is always a Hub image, even "localhost" or "example.com": otherwise
        # "ubuntu:22.04" would read as host "ubuntu", port 22.04.
        return DEFAULT_DOMAIN, _OFFICIAL_REPO_PREFIX + name
    if maybe_domain == _LOCALHOST:
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == _LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    elif _go_lower(maybe_domain) != maybe_domain:
        # Namespaces are lowercase, so an uppercase first component can only be a host.
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = _OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def _go_lower(text: str) -> str:
    """Go's ``strings.ToLower``.

    Go maps rune by rune; Python's full case mapping turns U+0130 into "i" plus a combining dot,
    which would hide an otherwise-valid lowercased name from the uppercase diagnosis.
    """
    if text.isascii():
        return text.lower()
    return text.replace("\u0130", "i").lower()


def _split_host_port(domain: str) -> tuple[str, str | None]:
    if domain.startswith("["):
        close = domain.find("]")
        if close != -1:
            rest = domain[close + 1 :]
            return domain[1:close], rest[1:] if rest.startswith(":") else None
    host, colon, port = domain.partition(":")
    return host, port if colon else None


def _digits_to_int(digits: str) -> int:
    if len(digits) <= _INT_CHUNK:
        return int(digits)
    value = 0
    for start in range(0, len(digits), _INT_CHUNK):
        chunk = digits[start : start + _INT_CHUNK]
        value = value * 10 ** len(chunk) + int(chunk)
    return value
