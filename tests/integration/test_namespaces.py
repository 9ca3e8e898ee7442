"""Namespaces with the real kubectl and the `kubernetes` client: a create in a missing one is
NotFound, `kubectl delete ns` ends Terminating and then gone with the pods in it, the built-in
ones cannot be deleted, and a namespace (its uid, labels, default account) survives a restart."""

from __future__ import annotations

import pytest
from conftest import DaemonFactory, Kubectl, RunningDaemon
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration


def test_kubectl_refuses_a_missing_namespace_and_deletes_one_with_its_pods(
    kubectl: Kubectl, daemon: RunningDaemon
) -> None:
    missing = kubectl.run("run", "w", "-n", "nope", "--image=nginx:1.27", check=False)
    assert missing.returncode != 0
    assert 'Error from server (NotFound): namespaces "nope" not found' in missing.stderr

    kubectl.run("create", "namespace", "team")
    kubectl.run("run", "w", "-n", "team", "--image=nginx:1.27")
    kubectl.run("wait", "-n", "team", "--for=condition=Ready", "pod/w", "--timeout=30s")
    listed = kubectl.run("get", "ns", "team", "--no-headers").stdout.split()
    assert listed[:2] == ["team", "Active"]
    accounts = kubectl.run("get", "sa", "-n", "team", "-o", "name").stdout.split()
    assert accounts == ["serviceaccount/default"]

    # kubectl waits until the namespace is gone (it watches for its deletion).
    deleted = kubectl.run("delete", "ns", "team", "--timeout=60s")
    assert deleted.stdout.strip() == 'namespace "team" deleted'
    gone = kubectl.run("get", "ns", "team", check=False)
    assert 'Error from server (NotFound): namespaces "team" not found' in gone.stderr
    pods = kubectl.run("get", "pods", "-n", "team", check=False)
    assert "No resources found in team namespace." in pods.stderr
    assert "pod_deleted" in daemon.log()

    refused = kubectl.run("delete", "ns", "kube-system", check=False)
    assert refused.returncode != 0
    assert (
        'Error from server (Forbidden): namespaces "kube-system" is forbidden: '
        "this namespace may not be deleted"
    ) in refused.stderr


def test_the_client_sees_terminating_then_deleted(core: client.CoreV1Api) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team")))
    version = core.list_namespace().metadata.resource_version
    core.delete_namespace("team")
    seen = []
    stream = watch.Watch()
    for event in stream.stream(core.list_namespace, resource_version=version, timeout_seconds=30):
        if event["object"].metadata.name == "team":
            seen.append((event["type"], event["object"]))
            if event["type"] == "DELETED":
                stream.stop()
    first_type, first = seen[0]
    assert (first_type, first.status.phase) == ("MODIFIED", "Terminating")
    assert first.metadata.deletion_timestamp is not None
    assert first.spec.finalizers == ["kubernetes"]
    # The namespace controller removes its finalizer once the content is gone, then it goes.
    assert [(t, ns.spec.finalizers) for t, ns in seen[-2:]] == [("MODIFIED", []), ("DELETED", [])]
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_secret("team", client.V1Secret(metadata={"name": "s"}))
    assert missing.value.status == 404


def test_a_namespace_survives_a_restart(daemon_factory: DaemonFactory) -> None:
    first = daemon_factory()
    created = first.api(
        "POST", "/api/v1/namespaces", {"metadata": {"name": "team", "labels": {"a": "b"}}}
    )
    first.kill()
    second = daemon_factory(state_dir=first.state_dir)
    again = second.api("GET", "/api/v1/namespaces/team")
    assert again["metadata"]["uid"] == created["metadata"]["uid"]
    assert again["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert again["metadata"]["labels"] == {"a": "b", "kubernetes.io/metadata.name": "team"}
    second.api("GET", "/api/v1/namespaces/team/serviceaccounts/default")
    default = second.api("GET", "/api/v1/namespaces/default")
    assert default["metadata"]["uid"] != created["metadata"]["uid"]
