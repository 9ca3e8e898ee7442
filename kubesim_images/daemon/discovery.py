"""Discovery documents, as kubectl and the clients read them.

kubectl needs `/api`, `/apis` and `/api/v1` to map kinds to resources. Both are generated from
the resource table (`resources.py`), as are the OpenAPI documents in `openapi.py`, and joined
by the groups the daemon serves outside the table: `authentication.k8s.io/v1` and
`authorization.k8s.io/v1`, whose reviews (`kubectl auth whoami`, `kubectl auth can-i`, with
`--list`) are answered, never stored (whoami.py, access.py), and
`coordination.k8s.io/v1`, whose node leases are rendered for GET alone (leases.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubesim_images.daemon import access, leases, whoami
from kubesim_images.daemon.resources import RESOURCES as TABLE
from kubesim_images.daemon.resources import Resource

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


def api_versions(address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


# Group versions served beside the table, each with its APIResourceList's entries.
BESIDE_TABLE: dict[tuple[str, str], tuple[dict[str, Any], ...]] = {
    (whoami.GROUP, whoami.VERSION): whoami.DISCOVERY,
    (access.GROUP, access.VERSION): access.DISCOVERY,
    (leases.GROUP, leases.VERSION): (leases.DISCOVERY,),
}


def _group_versions(table: Sequence[Resource]) -> dict[str, list[str]]:
    """Named groups (apps, ...) and their versions, in the table's order, then those beside it."""
    out: dict[str, list[str]] = {}
    pairs = [(res.group, res.version) for res in table if res.group]
    for group, version in [*pairs, *BESIDE_TABLE]:
        if version not in out.setdefault(group, []):
            out[group].append(version)
    return out


def _group_version(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


def api_groups(table: Sequence[Resource]) -> dict[str, Any]:
    """`/apis`: the named groups of the table."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": group,
                "versions": [_group_version(group, v) for v in versions],
                "preferredVersion": _group_version(group, versions[0]),
            }
            for group, versions in _group_versions(table).items()
        ],
    }


def group_documents(table: Sequence[Resource]) -> dict[str, dict[str, Any]]:
    """`/apis/<group>`: each named group's APIGroup, keyed by its path."""
    return {
        f"/apis/{group['name']}": {"kind": "APIGroup", "apiVersion": "v1", **group}
        for group in api_groups(table)["groups"]
    }


def resource_lists(table: Sequence[Resource]) -> dict[str, dict[str, Any]]:
    """The APIResourceList of each group version, keyed by its path: `/api/v1` for the core
    group, `/apis/<group>/<version>` for the others."""
    out: dict[str, dict[str, Any]] = {}
    for res in table:
        group_version = res.api_version
        doc = out.setdefault(
            res.api_prefix,
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": group_version,
                "resources": [],
            },
        )
        doc["resources"].append(res.discovery())
        doc["resources"].extend(res.subresource_discovery())
    for (group, version), entries in BESIDE_TABLE.items():
        out[f"/apis/{group}/{version}"] = {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}",
            "resources": [dict(entry) for entry in entries],
        }
    return out


# The documents of the daemon's own table (OpenAPI and field validation read them).
API_GROUPS = api_groups(TABLE)
API_V1 = resource_lists(TABLE)["/api/v1"]
RESOURCES: list[dict[str, Any]] = API_V1["resources"]
