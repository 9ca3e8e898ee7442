"""Property: whatever pod, secret or service-account body arrives, as JSON or YAML, to a create
or a patch, the answer is never a 500 and every answer, and every list after it, is valid JSON.

The bodies include what broke the daemon before issue 7: NaN and Infinity, integers outside
int64, YAML integer and float keys, oversized labels and annotations, bad names.
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml
from apikit import PODS, SECRETS, SERVICE_ACCOUNTS, Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_numbers = (
    st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([math.nan, math.inf, -math.inf, 2**63, -(2**63) - 1, 2**63 - 1])
)
_text = st.text(max_size=10) | st.sampled_from(["a/b", "..", "Bad_Name", "x" * 70, "ok"])
_scalars = st.none() | st.booleans() | _numbers | _text
_keys = _text | st.integers(-5, 2**70) | st.floats(allow_nan=False, width=16)
_any = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=10,
)


def _mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(valid, valid, _any)


_names = st.sampled_from(["p", "q.r", "s-1", "Bad_Name", "..", "", "x" * 254])
_labels = st.dictionaries(
    _text | st.sampled_from(["app", "example.com/tier", "a/b/c"]),
    _text | st.sampled_from(["web", "v" * 64]),
    max_size=3,
)
_metadata = st.fixed_dictionaries(
    {"name": _mostly(_names)},
    optional={
        "labels": _mostly(_labels),
        "annotations": _mostly(st.dictionaries(_text, _text, max_size=2)),
        "namespace": _mostly(st.sampled_from(["default", "other"])),
    },
)
_container = st.fixed_dictionaries(
    {
        "name": _mostly(st.sampled_from(["c", "Bad_Name"])),
        "image": _mostly(st.just("busybox:1.36")),
    },
    optional={"x": _any},
)
_pod = st.fixed_dictionaries(
    {
        "metadata": _mostly(_metadata),
        "spec": _mostly(
            st.fixed_dictionaries(
                {"containers": _mostly(st.lists(_container, min_size=1, max_size=2))},
                optional={"activeDeadlineSeconds": _numbers, "extra": _any},
            )
        ),
    },
    optional={"kind": st.just("Pod"), "apiVersion": st.just("v1")},
)
_secret = st.fixed_dictionaries(
    {"metadata": _mostly(_metadata)},
    optional={
        "type": _mostly(st.sampled_from(["Opaque", "kubernetes.io/dockerconfigjson"])),
        "data": _mostly(st.dictionaries(_text, st.sampled_from(["dg==", "not base64!"]))),
        "stringData": _mostly(st.dictionaries(_text, _text, max_size=2)),
    },
)
_account = st.fixed_dictionaries(
    {"metadata": _mostly(_metadata)},
    optional={"imagePullSecrets": _mostly(st.lists(st.fixed_dictionaries({"name": _any})))},
)
_FORMATS = st.sampled_from(["json", "yaml"])
_PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _encode(body: Any, fmt: str, *, patch: bool = False) -> tuple[bytes, str]:
    if fmt == "yaml":
        ctype = "application/apply-patch+yaml" if patch else "application/yaml"
        return yaml.safe_dump(body).encode(), ctype
    ctype = "application/merge-patch+json" if patch else "application/json"
    return json.dumps(body).encode(), ctype  # NaN and Infinity written as JS writes them


def _strict(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in an answer: not JSON")

    return json.loads(text, parse_constant=refuse)


async def _check(client: Client, resp: Any, path: str) -> None:
    text = await resp.text()
    assert resp.status < 500, text
    assert "Traceback" not in text
    doc = _strict(text)
    assert doc.get("kind") != "Status" or doc["code"] == resp.status
    listed = await client.get(path)
    assert listed.status == 200
    _strict(await listed.text())
    every = await client.get("/api/v1/" + path.rsplit("/", 1)[1])
    _strict(await every.text())


class TestAnyBodyAnyFormat:
    @_PROPERTY
    @given(body=_pod | _any, fmt=_FORMATS)
    async def test_pod_creates(self, client: Client, body: Any, fmt: str) -> None:
        data, ctype = _encode(body, fmt)
        resp = await client.post(PODS, data=data, headers={"Content-Type": ctype})
        await _check(client, resp, PODS)

    @_PROPERTY
    @given(body=_secret | _any, fmt=_FORMATS)
    async def test_secret_creates(self, client: Client, body: Any, fmt: str) -> None:
        data, ctype = _encode(body, fmt)
        resp = await client.post(SECRETS, data=data, headers={"Content-Type": ctype})
        await _check(client, resp, SECRETS)

    @_PROPERTY
    @given(body=_account | _any, fmt=_FORMATS)
    async def test_service_account_creates(self, client: Client, body: Any, fmt: str) -> None:
        data, ctype = _encode(body, fmt)
        resp = await client.post(SERVICE_ACCOUNTS, data=data, headers={"Content-Type": ctype})
        await _check(client, resp, SERVICE_ACCOUNTS)

    @_PROPERTY
    @given(
        patch=st.fixed_dictionaries({}, optional={"metadata": _mostly(_metadata)}) | _secret | _any,
        fmt=_FORMATS,
        path=st.sampled_from([f"{PODS}/fixed", f"{SECRETS}/fixed", f"{SERVICE_ACCOUNTS}/fixed"]),
    )
    async def test_patches(self, client: Client, patch: Any, fmt: str, path: str) -> None:
        collection = path.rsplit("/", 1)[0]
        if (await client.get(path)).status == 404:
            seed: dict[str, Any] = {"metadata": {"name": "fixed"}}
            if collection == PODS:
                seed["spec"] = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
            created = await client.post(collection, json=seed)
            assert created.status == 201, await created.text()
        data, ctype = _encode(patch, fmt, patch=True)
        params = {"fieldManager": "hypothesis"}
        resp = await client.patch(path, params=params, data=data, headers={"Content-Type": ctype})
        await _check(client, resp, collection)
