"""Resource quantities at admission: one the decoder cannot parse is a 400 with apimachinery's
ParseQuantity text, a negative one a 422 with ValidateResourceQuantityValue's; nothing stored."""

from __future__ import annotations

import re
from typing import Any

import pytest
from apikit import PODS, assert_status, pod_manifest

from kubesim_images.daemon.quantities import QuantityError, parse_quantity

PAUSE = "registry.k8s.io/pause:3.10"
FORMAT = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)


def with_resources(where: str, resources: dict[str, Any]) -> dict[str, Any]:
    pod = pod_manifest("q", PAUSE, init=(PAUSE,))
    if where == "overhead":
        pod["spec"]["overhead"] = resources["requests"]
    else:
        pod["spec"][where][0]["resources"] = resources
    return pod


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("abc", FORMAT),
        ("", FORMAT),
        ("1 Gi", FORMAT),
        ("1.2.3", "unable to parse numeric part of quantity"),
        ("1Gu", "unable to parse quantity's suffix"),
        ("1mm", "unable to parse quantity's suffix"),
    ],
)
def test_unparseable_quantities_have_apimachinery_texts(text: str, error: str) -> None:
    with pytest.raises(QuantityError, match="^" + re.escape(error) + "$"):
        parse_quantity(text)


@pytest.mark.parametrize("text", ["1", "500m", "1.5Gi", "1e3", "+2", "-1", "0.1", "10E-3", "3n"])
def test_valid_quantities_parse(text: str) -> None:
    parse_quantity(text)


@pytest.mark.parametrize("where", ["containers", "initContainers", "overhead"])
async def test_an_unparseable_quantity_is_refused_400_and_not_stored(client, where) -> None:
    pod = with_resources(where, {"requests": {"cpu": "abc"}, "limits": {"memory": "1Gi"}})
    resp = await client.post(PODS, json=pod)
    body = await resp.json()
    assert_status(body, 400, "BadRequest")
    assert body["message"] == f'Pod in version "v1" cannot be handled as a Pod: {FORMAT}'
    assert (await client.get(f"{PODS}/q")).status == 404


async def test_a_limit_that_is_not_a_quantity_is_refused(client) -> None:
    pod = with_resources("containers", {"limits": {"memory": True}})
    body = await (await client.post(PODS, json=pod)).json()
    assert_status(body, 400, "BadRequest", message_contains=FORMAT)


@pytest.mark.parametrize(
    ("where", "part", "field"),
    [
        ("containers", "requests", "spec.containers[0].resources.requests[cpu]"),
        ("containers", "limits", "spec.containers[0].resources.limits[cpu]"),
        ("initContainers", "requests", "spec.initContainers[0].resources.requests[cpu]"),
        ("overhead", "requests", "spec.overhead[cpu]"),
    ],
)
async def test_a_negative_quantity_is_invalid(client, where, part, field) -> None:
    pod = with_resources(where, {part: {"cpu": "-1"}})
    body = await (await client.post(PODS, json=pod)).json()
    assert_status(body, 422, "Invalid")
    assert body["message"] == (
        f'Pod "q" is invalid: {field}: Invalid value: "-1": must be greater than or equal to 0'
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "-1": must be greater than or equal to 0',
            "field": field,
        }
    ]
    assert (await client.get(f"{PODS}/q")).status == 404


async def test_numbers_and_valid_strings_are_accepted(client) -> None:
    pod = with_resources("containers", {"requests": {"cpu": 0.5, "memory": "64Mi"}})
    resp = await client.post(PODS, json=pod)
    assert resp.status == 201, await resp.text()


APPS = "/apis/apps/v1/namespaces/default"


def workload(kind: str, resources: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": "q"}
    container = {"name": "app", "image": PAUSE, "resources": resources}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": "q"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


@pytest.mark.parametrize(
    ("kind", "plural"), [("Deployment", "deployments"), ("ReplicaSet", "replicasets")]
)
async def test_a_workloads_pod_template_has_the_pods_quantity_checks(client, kind, plural) -> None:
    """Refused at the workload's create, not later at each pod its controller would make."""
    bad = workload(kind, {"requests": {"cpu": "abc"}})
    body = await (await client.post(f"{APPS}/{plural}", json=bad)).json()
    assert_status(body, 400, "BadRequest")
    assert body["message"] == f'{kind} in version "v1" cannot be handled as a {kind}: {FORMAT}'
    negative = workload(kind, {"limits": {"memory": "-1Gi"}})
    body = await (await client.post(f"{APPS}/{plural}", json=negative)).json()
    assert_status(body, 422, "Invalid")
    assert body["message"] == (
        f'{kind}.apps "q" is invalid: spec.template.spec.containers[0].resources.limits[memory]: '
        'Invalid value: "-1Gi": must be greater than or equal to 0'
    )
    assert (await client.get(f"{APPS}/{plural}/q")).status == 404
    # A patch that makes the template's quantity bad is refused the same way.
    good = workload(kind, {"requests": {"cpu": "100m"}})
    assert (await client.post(f"{APPS}/{plural}", json=good)).status == 201
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "app", "resources": {"requests": {"cpu": "1 Gi"}}}]
                }
            }
        }
    }
    resp = await client.patch(
        f"{APPS}/{plural}/q",
        json=patch,
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert_status(await resp.json(), 400, "BadRequest", message_contains=FORMAT)


def invalid(field: str, value: str, message: str) -> dict[str, str]:
    return {
        "reason": "FieldValueInvalid",
        "message": f'Invalid value: "{value}": {message}',
        "field": field,
    }


REQUESTS = "spec.containers[0].resources.requests"
LIMITS = "spec.containers[0].resources.limits"


@pytest.mark.parametrize(
    ("resources", "causes"),
    [
        pytest.param(
            {"requests": {"memroy": "1Gi"}},
            [
                invalid(
                    f"{REQUESTS}[memroy]",
                    "memroy",
                    "must be a standard resource type or fully qualified",
                ),
                invalid(
                    f"{REQUESTS}[memroy]", "memroy", "must be a standard resource for containers"
                ),
            ],
            id="misspelt",
        ),
        pytest.param(
            {"limits": {"pods": "1"}},
            [invalid(f"{LIMITS}[pods]", "pods", "must be a standard resource for containers")],
            id="not-a-containers",
        ),
        pytest.param(
            {"requests": {"example.com/gpu": "1"}},
            [
                {
                    "reason": "FieldValueRequired",
                    "message": "Required value: Limit must be set for non overcommitable resources",
                    "field": LIMITS,
                }
            ],
            id="extended-without-limit",
        ),
        pytest.param(
            {"requests": {"example.com/gpu": "1"}, "limits": {"example.com/gpu": "2"}},
            [invalid(REQUESTS, "1", "must be equal to example.com/gpu limit of 2")],
            id="extended-below-limit",
        ),
    ],
)
async def test_resource_requirements_the_apiserver_refuses(client, resources, causes) -> None:
    pod = with_resources("containers", resources)
    body = await (await client.post(PODS, json=pod)).json()
    assert_status(body, 422, "Invalid")
    assert body["details"]["causes"] == causes
    assert (await client.get(f"{PODS}/q")).status == 404


async def test_resources_the_apiserver_takes(client) -> None:
    resources = {
        "requests": {"cpu": "500m", "ephemeral-storage": "1Gi", "hugepages-2Mi": "2Mi"},
        "limits": {
            "cpu": "1",
            "example.com/gpu": "2",
            "kubernetes.io/x": "1",
            "hugepages-2Mi": "2Mi",
        },
    }
    resp = await client.post(PODS, json=with_resources("containers", resources))
    doc = await resp.json()
    assert resp.status == 201, doc
    # The extended resource's request is its limit, defaulted.
    assert doc["spec"]["containers"][0]["resources"]["requests"]["example.com/gpu"] == "2"
