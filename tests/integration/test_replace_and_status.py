"""PUT/replace for pods (`kubectl replace`, the client's replace) with the API server's
optimistic concurrency, and GET pods/{name}/status (`read_namespaced_pod_status`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import Kubectl, RunningDaemon, poll
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration


def core(daemon: RunningDaemon) -> client.CoreV1Api:
    return client.CoreV1Api(client.ApiClient(client.Configuration(host=daemon.base_url)))


def test_kubectl_replace_changes_the_image_and_refuses_a_stale_version(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    daemon.create_pod("web", "busybox:1.36")
    daemon.wait_running("web")
    pod = yaml.safe_load(kubectl.run("get", "pod", "web", "-o", "yaml").stdout)
    pod["spec"]["containers"][0]["image"] = "busybox:1.37"
    pod["metadata"]["labels"] = {"tier": "web"}
    path = tmp_path / "web.yaml"
    path.write_text(yaml.safe_dump(pod), encoding="utf-8")
    assert kubectl.run("replace", "-f", str(path)).stdout.strip() == "pod/web replaced"

    def running_new() -> bool:
        status = daemon.pod("web")["status"]["containerStatuses"][0]
        return bool(status["image"] == "busybox:1.37" and status["ready"])

    poll(running_new, timeout=15, what="web running busybox:1.37")
    assert daemon.pod("web")["metadata"]["labels"] == {"tier": "web"}  # replaced, not merged

    stale = kubectl.run("replace", "-f", str(path), check=False)  # its version is now old
    assert stale.returncode == 1
    assert (
        'Operation cannot be fulfilled on pods "web": the object has been modified; please '
        "apply your changes to the latest version and try again"
    ) in stale.stderr
    pod = yaml.safe_load(kubectl.run("get", "pod", "web", "-o", "yaml").stdout)
    pod["spec"]["restartPolicy"] = "Never"
    path.write_text(yaml.safe_dump(pod), encoding="utf-8")
    forbidden = kubectl.run("replace", "-f", str(path), check=False)
    assert "spec: Forbidden: pod updates may not change fields other than" in forbidden.stderr


def test_client_replace_and_read_status(daemon: RunningDaemon) -> None:
    api = core(daemon)
    daemon.create_pod("web", "busybox:1.36")
    daemon.wait_running("web")
    status = api.read_namespaced_pod_status("web", "default")
    assert status.status is not None
    assert status.status.phase == "Running"
    pod = api.read_namespaced_pod("web", "default")
    assert pod.spec is not None
    pod.spec.containers[0].image = "busybox:1.37"
    replaced = api.replace_namespaced_pod("web", "default", pod)
    assert replaced.spec is not None
    assert replaced.spec.containers[0].image == "busybox:1.37"
    # The kubelet's status changes (the new image pulled, the container running again) are
    # writes too: `replaced` is stale once they land, so the dry run replaces the pod as it is
    # once running again, and must not take a version of its own.
    daemon.wait_running("web")
    current = api.read_namespaced_pod("web", "default")
    dry = api.replace_namespaced_pod("web", "default", current, dry_run="All")
    assert dry.metadata is not None
    assert current.metadata is not None
    assert dry.metadata.resource_version == current.metadata.resource_version
    with pytest.raises(ApiException) as missing:
        api.read_namespaced_pod_status("ghost", "default")
    assert missing.value.status == 404


def test_a_replace_that_changes_nothing_keeps_the_version_and_can_be_repeated(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    daemon.create_pod("same", "busybox:1.36")
    daemon.wait_running("same")
    daemon.api(
        "POST",
        "/api/v1/namespaces/default/secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}},
    )
    doc = yaml.safe_load(kubectl.run("get", "pod/same", "-o", "yaml").stdout)
    path = tmp_path / "same.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    for _ in range(2):  # the second would be a 409 if the first had taken a new version
        assert kubectl.run("replace", "-f", str(path)).stdout.strip() == "pod/same replaced"
    for kind in ("pod/same", "secret/s"):
        version = daemon.api("GET", f"/api/v1/namespaces/default/{kind.replace('/', 's/')}")[
            "metadata"
        ]["resourceVersion"]
        kubectl.run("label", kind, "tier-")  # removes nothing: an empty labels patch
        after = daemon.api("GET", f"/api/v1/namespaces/default/{kind.replace('/', 's/')}")
        assert after["metadata"]["resourceVersion"] == version
    assert daemon.pod("same")["metadata"]["resourceVersion"] == doc["metadata"]["resourceVersion"]
