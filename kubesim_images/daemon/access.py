"""`kubectl auth can-i`: SelfSubjectAccessReview and SelfSubjectRulesReview (`--list`), answered
for a daemon with no authorization.

The daemon authenticates (a bearer token, when one is configured) but does not authorize:
whoever gets past the token may do anything, as with an apiserver run with
`--authorization-mode=AlwaysAllow`. So every review is allowed, saying why; a review is
validated as the apiserver validates it (exactly one of resourceAttributes or
nonResourceAttributes), so a malformed one is its 422, not an invented yes. A rules review
answers AlwaysAllow's rules (`*` on every resource and path) for the namespace it names, which
it must name. Nothing is stored.

Discovery lists the group with only these kinds (`DISCOVERY`), so a client that maps kinds through
discovery (`kubectl create -f` of a review, `kubectl api-resources`, the Python client's
AuthorizationV1Api.get_api_resources) finds what is served and nothing more.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from kubesim_images.daemon.gojson import go_type
from kubesim_images.daemon.kube import bad_request, invalid
from kubesim_images.pod import FieldError

GROUP = "authorization.k8s.io"
VERSION = "v1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
PATH = f"/apis/{GROUP_VERSION}/selfsubjectaccessreviews"
RULES_PATH = f"/apis/{GROUP_VERSION}/selfsubjectrulesreviews"
REASON = "kubesim-images authorizes every authenticated request (as AlwaysAllow)"
# Their entries in the group version's APIResourceList, as kube-apiserver v1.32 lists them.
DISCOVERY: tuple[dict[str, Any], ...] = tuple(
    {
        "name": f"{kind.lower()}s",
        "singularName": kind.lower(),
        "namespaced": False,
        "kind": kind,
        "verbs": ["create"],
    }
    for kind in ("SelfSubjectAccessReview", "SelfSubjectRulesReview")
)
# AlwaysAllow's RulesFor: everything, and nothing left out.
_ALL_RULES = {
    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
    "incomplete": False,
}


def _spec(body: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    """A review's spec ({} when absent), or the apiserver's 400 for another kind's body or a
    spec that is not an object."""
    if body.get("kind") not in (None, "", kind):
        raise bad_request(f"the body is a {body.get('kind')}, not a {kind}")
    spec = body.get("spec")
    if spec is not None and not isinstance(spec, Mapping):
        raise bad_request(
            f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot unmarshal '
            f"into Go struct field {kind}.spec of type v1.{kind}Spec"
        )
    return spec or {}


def review(body: Mapping[str, Any]) -> dict[str, Any]:
    """The review answered: the request's spec with an allowed status."""
    spec = _spec(body, "SelfSubjectAccessReview")
    given = [k for k in ("resourceAttributes", "nonResourceAttributes") if spec.get(k) is not None]
    for key in given:
        if not isinstance(spec[key], Mapping):
            raise bad_request(f"spec.{key} must be an object")
    if len(given) != 1:
        value = "null" if not given else "{...}"
        raise invalid(
            "SelfSubjectAccessReview.authorization.k8s.io",
            "",
            [
                FieldError(
                    "spec.resourceAttributes",
                    "FieldValueInvalid",
                    f'Invalid value: "{value}": exactly one of nonResourceAttributes or '
                    "resourceAttributes must be specified",
                )
            ],
        )
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": GROUP_VERSION,
        "metadata": {"creationTimestamp": None},
        "spec": dict(spec),
        "status": {"allowed": True, "reason": REASON},
    }


def rules_review(body: Mapping[str, Any]) -> dict[str, Any]:
    """The rules of whoever asks in the namespace the review names: all of them. As the
    apiserver, the answer carries no spec, only the status."""
    namespace = _spec(body, "SelfSubjectRulesReview").get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise bad_request(
            'SelfSubjectRulesReview in version "v1" cannot be handled as a '
            f"SelfSubjectRulesReview: json: cannot unmarshal {go_type(namespace)} into Go "
            "struct field SelfSubjectRulesReviewSpec.spec.namespace of type string"
        )
    if not namespace:
        raise bad_request("no namespace on request")
    return {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": GROUP_VERSION,
        "metadata": {"creationTimestamp": None},
        "spec": {},
        "status": copy.deepcopy(_ALL_RULES),
    }
