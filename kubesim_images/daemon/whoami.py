"""`kubectl auth whoami`: SelfSubjectReview (`authentication.k8s.io/v1`, GA since v1.28).

The daemon knows one caller at most: whoever holds the `--token-file` token, or, without one,
anyone, whom the apiserver calls `system:anonymous` (anonymous auth on). The token's holder is
named after the daemon, in the groups every authenticated user is in; the AlwaysAllow
authorizer (access.py) makes no use of either. Nothing is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubesim_images.daemon.kube import bad_request

GROUP = "authentication.k8s.io"
VERSION = "v1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
PATH = f"/apis/{GROUP_VERSION}/selfsubjectreviews"
HOLDER_NAME = "kubesim-images"
# Its entry in the group version's APIResourceList, as kube-apiserver v1.32 lists it.
DISCOVERY: tuple[dict[str, Any], ...] = (
    {
        "name": "selfsubjectreviews",
        "singularName": "selfsubjectreview",
        "namespaced": False,
        "kind": "SelfSubjectReview",
        "verbs": ["create"],
    },
)


def user_info(*, authenticated: bool) -> dict[str, Any]:
    if authenticated:
        return {"username": HOLDER_NAME, "groups": ["system:authenticated"]}
    return {"username": "system:anonymous", "groups": ["system:unauthenticated"]}


def review(body: Mapping[str, Any], *, authenticated: bool) -> dict[str, Any]:
    """Who the caller is, as the apiserver answers a SelfSubjectReview."""
    if body.get("kind") not in (None, "", "SelfSubjectReview"):
        raise bad_request(f"the body is a {body.get('kind')}, not a SelfSubjectReview")
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": GROUP_VERSION,
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": user_info(authenticated=authenticated)},
    }
