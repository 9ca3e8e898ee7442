"""The real kubectl reading the daemon's OpenAPI schemas: `kubectl explain`, and the server-side
field validation that kubectl asks for (`fieldValidation=Strict`) refusing a typo.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import Kubectl, RunningDaemon
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

pytestmark = pytest.mark.integration
TYPO = "spec.containers[0].imagePullPolicyy"


def typo_pod(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "app", "image": "busybox:1.36", "imagePullPolicyy": "Never"}]
        },
    }


def write(tmp_path: Path, doc: dict[str, object]) -> str:
    path = tmp_path / f"{doc['metadata']['name']}.yaml"  # type: ignore[index]
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def explain(kubectl: Kubectl, *args: str) -> str:
    return kubectl.run("explain", *args).stdout


def flat(text: str) -> str:
    """kubectl wraps descriptions at 80 columns; compare them as one line."""
    return " ".join(text.split())


def test_explain_pods_shows_the_kind_and_its_fields(kubectl: Kubectl) -> None:
    out = explain(kubectl, "pods")
    assert out.splitlines()[:2] == ["KIND:       Pod", "VERSION:    v1"]
    assert (
        "Pod is a collection of containers that can run on a host. This resource is created "
        "by clients and scheduled onto hosts." in flat(out)
    )
    for field in ("apiVersion\t<string>", "metadata\t<ObjectMeta>", "spec\t<PodSpec>"):
        assert field in out, out


def test_explain_a_nested_field_prints_the_upstream_description(kubectl: Kubectl) -> None:
    out = explain(kubectl, "pod.spec.containers.imagePullPolicy")
    assert "FIELD: imagePullPolicy <string>" in out
    assert (
        "Image pull policy. One of Always, Never, IfNotPresent. Defaults to Always if :latest "
        "tag is specified, or IfNotPresent otherwise. Cannot be updated." in flat(out)
    )


def test_explain_secret_type(kubectl: Kubectl) -> None:
    out = explain(kubectl, "secret.type")
    assert out.splitlines()[0] == "KIND:       Secret"
    assert "Used to facilitate programmatic handling of secret data." in flat(out)


def test_explain_recursive_lists_the_nested_fields(kubectl: Kubectl) -> None:
    out = explain(kubectl, "--recursive", "pod.spec.initContainers")
    assert "FIELD: initContainers <[]Container>" in out
    assert "List of initialization containers belonging to the pod." in flat(out)
    fields = {line.split("\t")[0].strip() for line in out.splitlines() if "\t<" in line}
    assert {"image", "imagePullPolicy", "name", "env", "valueFrom", "configMapKeyRef"} <= fields
    assert "name\t<string> -required-" in out


@pytest.mark.parametrize(
    ("resource", "kind"),
    [
        ("serviceaccounts", "ServiceAccount"),
        ("events", "Event"),
        ("nodes", "Node"),
        ("namespaces", "Namespace"),
    ],
)
def test_explain_every_kind_served(kubectl: Kubectl, resource: str, kind: str) -> None:
    assert explain(kubectl, resource).splitlines()[0] == f"KIND:       {kind}"


def test_kubectl_create_refuses_a_typo_as_the_apiserver_does(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    manifest = write(tmp_path, typo_pod("typo"))
    refused = kubectl.run("create", "-f", manifest, check=False)
    assert refused.returncode != 0
    assert refused.stderr.strip() == (
        f'Error from server (BadRequest): error when creating "{manifest}": Pod in version "v1" '
        f'cannot be handled as a Pod: strict decoding error: unknown field "{TYPO}"'
    )
    assert daemon.request("GET", "/api/v1/namespaces/default/pods/typo")[0] == 404

    warned = kubectl.run("create", "--validate=warn", "-f", manifest)
    assert f'Warning: unknown field "{TYPO}"' in warned.stderr
    kubectl.run("delete", "pod", "typo")

    accepted = kubectl.run("create", "--validate=false", "-f", manifest)
    assert accepted.stdout.strip() == "pod/typo created"
    assert accepted.stderr == ""
    stored = json.loads(kubectl.run("get", "pod", "typo", "-o", "json").stdout)
    container = stored["spec"]["containers"][0]
    assert "imagePullPolicyy" not in container  # dropped, so the default policy applies
    assert container["imagePullPolicy"] == "IfNotPresent"


def test_apply_of_kinds_not_served_says_no_matches_for_kind(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    """kubectl's validation falls back to /openapi/v2 for a kind /openapi/v3 does not list; with
    no schema for it, it goes on and says what any cluster without the kind says."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p1"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    }
    manifest = tmp_path / "multi.yaml"
    manifest.write_text(yaml.safe_dump_all([service, job, pod]), encoding="utf-8")
    result = kubectl.run("apply", "-f", str(manifest), check=False)
    assert result.returncode == 1
    assert result.stdout.strip() == "pod/p1 created"
    assert "failed to download openapi" not in result.stderr
    unmapped = 'resource mapping not found for name: "{}" namespace: "" from "{}": '
    assert result.stderr.splitlines() == [
        unmapped.format("s", manifest) + 'no matches for kind "Service" in version "v1"',
        "ensure CRDs are installed first",
        unmapped.format("j", manifest) + 'no matches for kind "Job" in version "batch/v1"',
        "ensure CRDs are installed first",
    ]
    assert daemon.pod("p1")["metadata"]["name"] == "p1"


def test_python_client_strict_field_validation(daemon: RunningDaemon, tmp_path: Path) -> None:
    """The typed client refuses the typo itself, so unstructured bodies go through its
    DynamicClient, as operators' code sends them (its discovery cache in tmp_path: by default
    it leaves a file in /tmp)."""
    configuration = client.Configuration(host=daemon.base_url)
    with client.ApiClient(configuration) as api_client:
        dynamic = DynamicClient(api_client, cache_file=str(tmp_path / "discovery.json"))
        pods = dynamic.resources.get(api_version="v1", kind="Pod")
        with pytest.raises(ApiException) as refused:
            pods.create(
                body=typo_pod("typo"),
                namespace="default",
                query_params=[("fieldValidation", "Strict")],
            )
        assert refused.value.status == 400
        status = json.loads(refused.value.body)
        assert status["reason"] == "BadRequest"
        assert status["message"].endswith(f'strict decoding error: unknown field "{TYPO}"')
        created = pods.create(
            body=typo_pod("typo"), namespace="default", query_params=[("fieldValidation", "Warn")]
        )
        assert created.spec.containers[0].imagePullPolicy == "IfNotPresent"
        assert "imagePullPolicyy" not in created.spec.containers[0]
