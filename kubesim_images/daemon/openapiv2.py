"""`/openapi/v2`: the Swagger 2.0 document, served without definitions.

kubectl validates a manifest on the server when the kind's PATCH in `/openapi/v3` takes
`fieldValidation` (every kind the daemon serves does). For any other kind (a Service, a
batch/v1 Job) it falls back to validating on the client against `/openapi/v2`, and a kind that
document does not define is not validated at all: kubectl goes on to map it and says what a
cluster without the kind says, `no matches for kind "Service" in version "v1"`. Without the
document that fallback failed first (`failed to download openapi`). The document defines no
kind, so the fallback only ever skips, as it would for kinds a real apiserver does not serve;
the served kinds' schemas are in `/openapi/v3` (openapi.py).

client-go asks for the gnostic protobuf form (`openapi_v2.Document`); other clients get JSON.
"""

from __future__ import annotations

import functools
import json

from kubesim_images.daemon.discovery import KUBE_VERSION

PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
# The media type the apiserver names its protobuf answer with.
PROTOBUF_ANSWER = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
TITLE = "Kubernetes"


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2): a string or a message."""
    length, out = len(payload), bytearray([number << 3 | 2])
    while length >= 0x80:
        out.append(length & 0x7F | 0x80)
        length >>= 7
    out.append(length)
    return bytes(out) + payload


@functools.cache
def document_protobuf() -> bytes:
    """openapi_v2.Document: swagger (1), info (2: title 1, version 2), paths (8), empty."""
    info = _field(1, TITLE.encode()) + _field(2, KUBE_VERSION["gitVersion"].encode())
    return _field(1, b"2.0") + _field(2, info) + _field(8, b"")


@functools.cache
def document_json() -> bytes:
    info = {"title": TITLE, "version": KUBE_VERSION["gitVersion"]}
    return json.dumps({"swagger": "2.0", "info": info, "paths": {}}).encode()
