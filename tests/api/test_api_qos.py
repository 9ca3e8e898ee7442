"""A pod's compute resources as the apiserver treats them: limits without requests default the
requests (`SetDefaults_Pod`), a request above its limit is a 422, and `status.qosClass` is
`GetPodQOS` of every container, init containers included (the cases of kubernetes' qos_test)."""

from __future__ import annotations

from typing import Any

import pytest
from apikit import PODS, PodWatch, assert_status, create_pod, pod_manifest

PAUSE = "registry.k8s.io/pause:3.10"
GUARANTEED_RES = {
    "requests": {"cpu": "100m", "memory": "64Mi"},
    "limits": {"cpu": "100m", "memory": "64Mi"},
}


def pod_with(*resources: dict[str, Any], init: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """A pod whose containers (and init containers) have these resources, in order."""
    pod = pod_manifest("q", *[PAUSE] * len(resources), init=(PAUSE,) * len(init))
    for container, given in zip(pod["spec"]["containers"], resources, strict=True):
        container["resources"] = given
    for container, given in zip(pod["spec"].get("initContainers", []), init, strict=True):
        container["resources"] = given
    return pod


CASES = [
    pytest.param(pod_with({}), "BestEffort", id="no-resources"),
    pytest.param(pod_with({"limits": {"cpu": "0", "memory": "0"}}), "BestEffort", id="zero"),
    pytest.param(pod_with({"limits": {"nvidia.com/gpu": "1"}}), "BestEffort", id="extended-only"),
    pytest.param(pod_with(GUARANTEED_RES), "Guaranteed", id="requests-equal-limits"),
    pytest.param(
        pod_with({"limits": {"cpu": "1", "memory": "1Gi"}}), "Guaranteed", id="limits-only"
    ),
    pytest.param(
        pod_with(
            {
                "requests": {"cpu": "1", "memory": "1Gi"},
                "limits": {"cpu": "1000m", "memory": "1024Mi"},
            }
        ),
        "Guaranteed",
        id="equal-values-written-differently",
    ),
    pytest.param(
        pod_with(GUARANTEED_RES, {"limits": {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"}}),
        "Guaranteed",
        id="two-guaranteed-containers",
    ),
    pytest.param(pod_with({"requests": {"cpu": "10m"}}), "Burstable", id="request-only"),
    pytest.param(pod_with({"limits": {"memory": "1Gi"}}), "Burstable", id="memory-limit-only"),
    pytest.param(
        pod_with(
            {
                "requests": {"cpu": "50m", "memory": "64Mi"},
                "limits": {"cpu": "100m", "memory": "64Mi"},
            }
        ),
        "Burstable",
        id="request-below-limit",
    ),
    pytest.param(pod_with(GUARANTEED_RES, {}), "Burstable", id="one-best-effort-container"),
    pytest.param(
        pod_with({}, init=({"requests": {"memory": "10Mi"}},)), "Burstable", id="init-request"
    ),
    pytest.param(
        pod_with(GUARANTEED_RES, init=({},)), "Burstable", id="best-effort-init-container"
    ),
    pytest.param(
        pod_with(GUARANTEED_RES, init=(GUARANTEED_RES,)), "Guaranteed", id="guaranteed-init"
    ),
    pytest.param(
        pod_with(
            {"limits": {"cpu": "1e999999999", "memory": "1e999999999"}},
            {"limits": {"cpu": "1e999999999", "memory": "1"}},
        ),
        "Guaranteed",
        id="sums-past-any-exponent",
    ),
]


@pytest.mark.parametrize(("pod", "expected"), CASES)
async def test_qos_class_is_computed_from_every_container(client, pod, expected) -> None:
    dry = await (await client.post(f"{PODS}?dryRun=All", json=pod)).json()
    assert dry["status"]["qosClass"] == expected
    created = await create_pod(client, pod)
    assert created["status"]["qosClass"] == expected
    assert (await (await client.get(f"{PODS}/q")).json())["status"]["qosClass"] == expected
    listed = await (await client.get(PODS)).json()
    assert [p["status"]["qosClass"] for p in listed["items"]] == [expected]


async def test_limits_without_requests_default_the_requests(client) -> None:
    pod = pod_with({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}})
    created = await create_pod(client, pod)
    resources = created["spec"]["containers"][0]["resources"]
    assert resources == {
        "limits": {"cpu": "1", "memory": "1Gi"},
        "requests": {"cpu": "500m", "memory": "1Gi"},
    }
    assert created["status"]["qosClass"] == "Burstable"


async def test_a_limits_only_container_can_be_written_again_as_it_was(client) -> None:
    """A merge patch replaces the container list with the limits-only container as first
    written: defaulted as the original was, it changes only the image, which is allowed."""
    limits = {"cpu": "1", "memory": "1Gi"}
    await create_pod(client, pod_with({"limits": limits}))
    container = {"name": "c0", "image": "busybox:1.36", "resources": {"limits": limits}}
    resp = await client.patch(
        f"{PODS}/q",
        json={"spec": {"containers": [container]}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["spec"]["containers"][0]["image"] == "busybox:1.36"
    assert body["spec"]["containers"][0]["resources"]["requests"] == limits
    assert body["status"]["qosClass"] == "Guaranteed"


async def test_an_unschedulable_pod_shows_its_qos_class(client) -> None:
    pod = pod_with(GUARANTEED_RES)
    pod["spec"]["nodeSelector"] = {"no": "such-node"}
    async with PodWatch(client, "q") as watch:
        await create_pod(client, pod)
        status = await watch.until(lambda p: p["status"].get("conditions") and p["status"])
    assert status["conditions"][0]["reason"] == "Unschedulable"
    assert status["qosClass"] == "Guaranteed"


@pytest.mark.parametrize("where", ["containers", "initContainers"])
async def test_a_request_above_its_limit_is_invalid(client, where) -> None:
    resources = {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"cpu": "1500m"}}
    pod = pod_with({}, init=({},))
    pod["spec"][where][0]["resources"] = resources
    body = await (await client.post(PODS, json=pod)).json()
    assert_status(body, 422, "Invalid")
    field = f"spec.{where}[0].resources.requests"
    assert body["message"] == (
        f'Pod "q" is invalid: {field}: Invalid value: "2": must be less than or equal to cpu '
        "limit of 1500m"
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "2": must be less than or equal to cpu limit of 1500m',
            "field": field,
        }
    ]
    assert (await client.get(f"{PODS}/q")).status == 404


async def test_a_deployment_template_with_a_request_above_its_limit_is_invalid(client) -> None:
    template = pod_with({"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}})
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": template["spec"]},
        },
    }
    resp = await client.post("/apis/apps/v1/namespaces/default/deployments", json=body)
    doc = await resp.json()
    assert_status(doc, 422, "Invalid")
    assert doc["details"]["causes"][0]["field"] == (
        "spec.template.spec.containers[0].resources.requests"
    )
    assert "must be less than or equal to memory limit of 1Gi" in doc["message"]
