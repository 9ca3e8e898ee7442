"""What containerd tells the kubelet when a pull fails, for every registry backend.

The kubelet shows the CRI error's text verbatim in `Failed to pull image` events, so users grep
for containerd's wording: `rpc error: code = NotFound desc = failed to pull and unpack image
"<ref>": failed to resolve reference "<ref>": <ref>: not found`. Backends describe *what*
happened (a status, a transport failure, a registry's `{"errors": [...]}` body); this module
words it and marks the failures the kubelet reports as `RegistryUnavailable` (the registry
could not be reached or answered 5xx), everything else being `ErrImagePull`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubesim_images.errors import RegistryError
from kubesim_images.reference import ImageReference

PLATFORM_NO_MATCH = "no match for platform in manifest: not found"
DOCKER_RATE_LIMIT = (
    "toomanyrequests: You have reached your pull rate limit. You may increase the limit by "
    "authenticating and upgrading: https://www.docker.com/increase-rate-limit"
)
_STATUS_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    416: "Requested Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True, slots=True)
class ErrorKind:
    code: str  # gRPC-ish status code containerd reports
    detail: str  # format string; {ref} is the pulled reference, {host} the registry host
    unavailable: bool = False


# The failures a simulated registry can be told to produce (scenario `faults`), worded as a
# real node reports them.
ERROR_KINDS: dict[str, ErrorKind] = {
    "toomanyrequests": ErrorKind(
        "Unknown",
        "unexpected status from GET request to https://{host}/v2/{repo}/manifests/"
        "{tag}: 429 Too Many Requests - Server message: {ratelimit}",
    ),
    "unauthorized": ErrorKind(
        "Unknown",
        "pull access denied, repository does not exist or may require "
        "authorization: server message: insufficient_scope: authorization failed",
    ),
    "manifest unknown": ErrorKind("NotFound", "{ref}: not found"),
    "not found": ErrorKind("NotFound", "{ref}: not found"),
    "timeout": ErrorKind(
        "Unknown",
        'Head "https://{host}/v2/{repo}/manifests/{tag}": dial tcp {host}:443: i/o timeout',
        unavailable=True,
    ),
    "connection reset": ErrorKind(
        "Unknown",
        'Head "https://{host}/v2/{repo}/manifests/{tag}": read tcp {host}:443: '
        "read: connection reset by peer",
        unavailable=True,
    ),
    "connection refused": ErrorKind(
        "Unknown",
        'Head "https://{host}/v2/{repo}/manifests/{tag}": dial tcp {host}:443: '
        "connect: connection refused",
        unavailable=True,
    ),
    "unavailable": ErrorKind(
        "Unknown",
        "unexpected status from HEAD request to https://{host}/v2/{repo}/manifests/"
        "{tag}: 503 Service Unavailable",
        unavailable=True,
    ),
    "internal error": ErrorKind(
        "Unknown",
        "unexpected status from HEAD request to https://{host}/v2/{repo}/manifests/"
        "{tag}: 500 Internal Server Error",
    ),
}


def registry_error(kind: str, ref: ImageReference) -> RegistryError:
    """The error containerd would hand the kubelet for this kind of failure on this pull."""
    spec = ERROR_KINDS.get(kind.lower(), ErrorKind("Unknown", kind))
    host = "registry-1.docker.io" if ref.domain == "docker.io" else ref.domain
    ratelimit = (
        DOCKER_RATE_LIMIT if ref.domain == "docker.io" else "toomanyrequests: too many requests"
    )
    detail = spec.detail.format(
        ref=ref.pull_ref,
        host=host,
        repo=ref.path,
        tag=ref.digest or ref.tag or "latest",
        ratelimit=ratelimit,
    )
    if spec.unavailable:
        return RegistryError(f"RegistryUnavailable: {detail}", code=kind, unavailable=True)
    message = (
        f"rpc error: code = {spec.code} desc = failed to pull and unpack image "
        f'"{ref.pull_ref}": failed to resolve reference "{ref.pull_ref}": {detail}'
    )
    return RegistryError(message, code=kind)


def status_line(status: int) -> str:
    return f"{status} {_STATUS_TEXT.get(status, 'Unknown')}".rstrip()


def server_message(body: bytes) -> str:
    """A distribution error body (`{"errors": [{"code", "message"}]}`) as containerd joins it."""
    try:
        doc: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for item in errors:
        if isinstance(item, dict):
            code = str(item.get("code", "")).lower()
            message = str(item.get("message", ""))
            parts.append(f"{code}: {message}" if message else code)
    return "; ".join(parts)


def failed_to_pull(ref: ImageReference, detail: str, *, code: str = "Unknown") -> str:
    image = ref.pull_ref
    return f'rpc error: code = {code} desc = failed to pull and unpack image "{image}": {detail}'


def resolve_failed(
    ref: ImageReference,
    detail: str,
    *,
    code: str = "Unknown",
    kind: str = "",
    unavailable: bool = False,
) -> RegistryError:
    """The manifest could not be resolved (most failures happen here)."""
    if unavailable:
        return RegistryError(f"RegistryUnavailable: {detail}", code=kind, unavailable=True)
    text = failed_to_pull(ref, f'failed to resolve reference "{ref.pull_ref}": {detail}', code=code)
    return RegistryError(text, code=kind)


def not_found(ref: ImageReference) -> RegistryError:
    return resolve_failed(
        ref, f"{ref.pull_ref}: not found", code="NotFound", kind="manifest unknown"
    )


def access_denied(ref: ImageReference, message: str) -> RegistryError:
    detail = (
        "pull access denied, repository does not exist or may require authorization: "
        f"server message: {message or 'unauthorized: authentication required'}"
    )
    return resolve_failed(ref, detail, kind="unauthorized")


def unexpected_status(
    ref: ImageReference, method: str, url: str, status: int, body: bytes
) -> RegistryError:
    """A status containerd has no special text for; 5xx is the registry being unavailable."""
    detail = f"unexpected status from {method} request to {url}: {status_line(status)}"
    message = server_message(body)
    if message:
        detail += f" - Server message: {message}"
    kind = "toomanyrequests" if status == 429 else f"http {status}"
    return resolve_failed(ref, detail, kind=kind, unavailable=status in {502, 503, 504})


def transport_failed(
    ref: ImageReference, method: str, url: str, reason: str, *, unavailable: bool = True
) -> RegistryError:
    """The registry could not be reached: `RegistryUnavailable`, as the kubelet reports it
    (a certificate we do not trust is our configuration's fault: `ErrImagePull`)."""
    verb = method[:1] + method[1:].lower()
    detail = f'failed to do request: {verb} "{url}": {reason}'
    return resolve_failed(
        ref, detail, kind="connection" if unavailable else "tls", unavailable=unavailable
    )


def no_platform(ref: ImageReference) -> RegistryError:
    return RegistryError(failed_to_pull(ref, PLATFORM_NO_MATCH, code="NotFound"), code="platform")


def content_failed(ref: ImageReference, detail: str) -> RegistryError:
    """A blob that failed verification or could not be fetched after the manifest resolved."""
    return RegistryError(failed_to_pull(ref, detail), code="content")
