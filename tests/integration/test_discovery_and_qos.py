"""What a newcomer's trial found, with the real kubectl and the `kubernetes` client: discovery
documents asked with a trailing slash, the authorization group `kubectl auth can-i` uses, the
node lease `kubectl describe node` reads, and a pod's QoS class from its requests and limits."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Kubectl, RunningDaemon
from kubernetes import client

pytestmark = pytest.mark.integration

SSAR = """\
apiVersion: authorization.k8s.io/v1
kind: SelfSubjectAccessReview
spec:
  resourceAttributes: {verb: delete, resource: pods, namespace: default}
"""


@pytest.fixture
def api_client(shared_daemon: RunningDaemon) -> Iterator[Any]:
    with client.ApiClient(client.Configuration(host=shared_daemon.base_url)) as api:
        yield api


def test_the_python_clients_discovery_calls_answer(api_client: Any) -> None:
    """Each asks its path with a trailing slash (`/version/`, `/apis/`, `/apis/apps/v1/`)."""
    assert client.VersionApi(api_client).get_code().git_version == "v1.32.4"
    assert client.CoreApi(api_client).get_api_versions().versions == ["v1"]
    groups = client.ApisApi(api_client).get_api_versions().groups
    assert [g.name for g in groups] == [
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "coordination.k8s.io",
    ]
    assert client.AppsApi(api_client).get_api_group().preferred_version.version == "v1"
    apps = client.AppsV1Api(api_client).get_api_resources().resources
    assert {"deployments", "replicasets"} <= {r.name for r in apps}
    core = client.CoreV1Api(api_client).get_api_resources().resources
    assert "pods" in {r.name for r in core}
    authz = client.AuthorizationV1Api(api_client).get_api_resources().resources
    assert [(r.name, r.kind, r.verbs) for r in authz] == [
        ("selfsubjectaccessreviews", "SelfSubjectAccessReview", ["create"]),
        ("selfsubjectrulesreviews", "SelfSubjectRulesReview", ["create"]),
    ]
    group = client.AuthorizationApi(api_client).get_api_group()
    assert group.preferred_version.group_version == "authorization.k8s.io/v1"


def test_kubectl_discovers_the_authorization_group(shared_kubectl: Kubectl) -> None:
    listed = shared_kubectl.run("api-resources", "--api-group=authorization.k8s.io").stdout
    assert "selfsubjectaccessreviews" in listed
    assert "authorization.k8s.io/v1" in shared_kubectl.run("api-versions").stdout
    # A review created from a file: kubectl maps its kind through discovery first.
    allowed = shared_kubectl.run(
        "create", "-f", "-", "-o", "jsonpath={.status.allowed}", stdin=SSAR
    ).stdout
    assert allowed == "true"
    assert shared_kubectl.run("auth", "can-i", "delete", "pods").stdout.strip() == "yes"


def test_kubectl_auth_whoami(shared_kubectl: Kubectl) -> None:
    rows = shared_kubectl.run("auth", "whoami").stdout.splitlines()
    assert [row.split() for row in rows] == [
        ["ATTRIBUTE", "VALUE"],
        ["Username", "system:anonymous"],
        ["Groups", "[system:unauthenticated]"],
    ]


def test_kubectl_auth_can_i_list(shared_kubectl: Kubectl) -> None:
    rows = shared_kubectl.run("auth", "can-i", "--list", "-n", "kube-system").stdout.splitlines()
    assert rows[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert [row.split() for row in rows[1:]] == [["*.*", "[]", "[]", "[*]"], ["[*]", "[]", "[*]"]]


def test_kubectl_describe_node_shows_its_lease(shared_kubectl: Kubectl) -> None:
    described = shared_kubectl.run("describe", "node", "kubesim-node").stdout
    assert "Failed to get lease" not in described
    section = described.split("Lease:", 1)[1].split("Conditions:", 1)[0]
    assert re.search(r"^\s+HolderIdentity:\s+kubesim-node$", section, re.MULTILINE), section
    assert re.search(r"^\s+RenewTime:\s+\w{3}, \d\d \w{3} \d{4} ", section, re.MULTILINE)


def test_kubectl_shows_the_qos_class(shared_kubectl: Kubectl) -> None:
    shared_kubectl.run("run", "qos-g", "--image=busybox:1.36", "--overrides", _limits("qos-g"))
    shared_kubectl.run("run", "qos-be", "--image=busybox:1.36")
    shown = shared_kubectl.run(
        "get", "pods", "qos-g", "qos-be", "-o", "jsonpath={.items[*].status.qosClass}"
    ).stdout
    assert shown == "Guaranteed BestEffort"
    described = shared_kubectl.run("describe", "pod", "qos-g").stdout
    assert re.search(r"^QoS Class:\s+Guaranteed$", described, re.MULTILINE), described
    requests = shared_kubectl.run(
        "get", "pod", "qos-g", "-o", "jsonpath={.spec.containers[0].resources.requests}"
    ).stdout
    assert requests == '{"cpu":"250m","memory":"64Mi"}'


def test_kubectl_is_told_a_request_above_its_limit_is_invalid(shared_kubectl: Kubectl) -> None:
    over = (
        '{"spec":{"containers":[{"name":"qos-bad","image":"busybox:1.36","resources":'
        '{"requests":{"cpu":"2"},"limits":{"cpu":"1"}}}]}}'
    )
    result = shared_kubectl.run(
        "run", "qos-bad", "--image=busybox:1.36", "--overrides", over, check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'The Pod "qos-bad" is invalid: spec.containers[0].resources.requests: Invalid value: '
        '"2": must be less than or equal to cpu limit of 1'
    )


def _limits(name: str) -> str:
    return (
        f'{{"spec":{{"containers":[{{"name":"{name}","image":"busybox:1.36","resources":'
        '{"limits":{"cpu":"250m","memory":"64Mi"}}}]}}'
    )
