"""The daemon's /openapi.json describes every operation it serves on the kinds' paths (what
`make fuzz` exercises), and nothing it does not serve."""

from __future__ import annotations

import re

from apikit import Client

from kubesim_images.daemon.openapi import daemon_document

_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
# Served but not described on purpose: exec and friends need a process (always 400), the
# all-namespaces lists are described, and apps/v1's scale is kubectl scale's own business.
_UNDESCRIBED = re.compile(r"/(exec|attach|portforward|eviction|scale)$")


def _normal(path: str) -> str:
    return re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)


def _served(client: Client) -> set[tuple[str, str]]:
    out = set()
    for route in client.server.app.router.routes():  # type: ignore[union-attr]
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method not in _METHODS or not isinstance(path, str):
            continue
        if "{plural" in path or "{" not in path or _UNDESCRIBED.search(path):
            continue
        if "{name}" in path or path.endswith("s"):  # an object's or a collection's path
            out.add((route.method, _normal(path)))
    return out


def _described() -> set[tuple[str, str]]:
    out = set()
    for path, item in daemon_document()["paths"].items():
        for method in item:
            if method.upper() in _METHODS and "{" in path:
                out.add((method.upper(), path))
    return out


async def test_every_write_served_on_a_kind_is_described(client: Client) -> None:
    served, described = _served(client), _described()
    assert ("DELETE", "/api/v1/namespaces/{namespace}/pods") in served
    assert ("PUT", "/api/v1/namespaces/{namespace}/pods/{name}/status") in served
    assert served - described == set()
    for needed in (
        ("PUT", "/api/v1/namespaces/{namespace}/pods/{name}"),
        ("DELETE", "/api/v1/namespaces/{namespace}/pods"),
        ("PATCH", "/api/v1/namespaces/{namespace}/pods/{name}/status"),
        ("PUT", "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"),
        ("DELETE", "/api/v1/namespaces/{namespace}/secrets"),
    ):
        assert needed in described


async def test_nothing_described_is_unserved(client: Client) -> None:
    for method, path in _described():
        concrete = path.replace("{namespace}", "default").replace("{name}", "web")
        resp = await client.request(method, concrete, data=b"{}")
        assert resp.status != 405, (method, path)
        assert not (resp.status == 404 and (await resp.json()).get("details") == {}), (
            method,
            path,
        )
