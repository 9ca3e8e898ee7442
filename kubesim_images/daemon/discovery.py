"""Discovery documents, as kubectl and the clients read them.

kubectl needs `/api`, `/apis` and `/api/v1` to map kinds to resources. Both are generated from
the resource table (`resources.py`), as are the OpenAPI documents in `openapi.py`.
"""

from __future__ import annotations

from typing import Any

from kubesim_images.daemon.resources import RESOURCES as TABLE

KUBE_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "kubesim-images",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}

# Generated from the resource table: the core group's kinds, in the table's order.
RESOURCES: list[dict[str, Any]] = [r.discovery() for r in TABLE if not r.group]


def api_versions(address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def _group_versions() -> dict[str, list[str]]:
    """Named groups (apps, ...) and their versions, in the table's order."""
    out: dict[str, list[str]] = {}
    for res in TABLE:
        if res.group and res.version not in out.setdefault(res.group, []):
            out[res.group].append(res.version)
    return out


def _group_version(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


API_GROUPS = {
    "kind": "APIGroupList",
    "apiVersion": "v1",
    "groups": [
        {
            "name": group,
            "versions": [_group_version(group, v) for v in versions],
            "preferredVersion": _group_version(group, versions[0]),
        }
        for group, versions in _group_versions().items()
    ],
}
API_V1 = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "v1",
    "resources": RESOURCES,
}
# /apis/<group>/<version>: the APIResourceList of each named group version.
GROUP_RESOURCES: dict[str, dict[str, Any]] = {
    f"{group}/{version}": {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}",
        "resources": [r.discovery() for r in TABLE if r.group == group and r.version == version],
    }
    for group, versions in _group_versions().items()
    for version in versions
}
