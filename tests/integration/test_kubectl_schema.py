"""The real kubectl reading the daemon's OpenAPI schemas: `kubectl explain`, and the server-side
field validation that kubectl asks for (`fieldValidation=Strict`) refusing a typo.
"""

from __future__ import annotations

import pytest
from conftest import Kubectl

pytestmark = pytest.mark.integration


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
