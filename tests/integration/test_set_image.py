"""A pod's container images are mutable, as in Kubernetes: `kubectl set image`, `apply` and
patches change them and the kubelet restarts that container through the image manager (Killing,
then Pulling/Pulled under the pull policy); every other spec field stays immutable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MISSING_IMAGE, Kubectl, RunningDaemon, poll
from kubernetes import client

pytestmark = pytest.mark.integration

KILLING = "Container app definition changed, will be restarted"


def messages(daemon: RunningDaemon, pod: str) -> list[tuple[str, str, str]]:
    return [(e["type"], e["reason"], e["message"]) for e in daemon.events(pod)]


def wait_image_running(daemon: RunningDaemon, pod: str, image: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = daemon.pod(pod)["status"]["containerStatuses"][0]
        return status if status["image"] == image and status["ready"] else None

    return poll(probe, timeout=15, what=f"{pod} running {image}")


def test_set_image_restarts_the_container_and_pulls_the_new_image(
    kubectl: Kubectl, daemon: RunningDaemon
) -> None:
    daemon.api(
        "POST",
        "/api/v1/namespaces/default/pods",
        {
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
        },
    )
    daemon.wait_running("web")
    out = kubectl.run("set", "image", "pod/web", "app=nginx:1.27")
    assert out.stdout.strip() == "pod/web image updated"
    status = wait_image_running(daemon, "web", "nginx:1.27")
    assert status["imageID"].startswith("docker.io/library/nginx@sha256:")
    assert status["restartCount"] == 1
    events = messages(daemon, "web")
    assert ("Normal", "Killing", KILLING) in events
    killed = events.index(("Normal", "Killing", KILLING))
    after = [reason for _, reason, _ in events[killed:]]
    assert after[:3] == ["Killing", "Pulling", "Pulled"]
    assert 'Pulling image "nginx:1.27"' in events[killed + 1][2]
    pod = daemon.pod("web")
    assert pod["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"  # kept
    assert kubectl.run("get", "pod", "web", "--no-headers").stdout.split()[1:4] == [
        "1/1",
        "Running",
        "1",
    ]


def test_apply_with_a_new_image_re_pulls_under_always(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "containers": [{"name": "app", "image": "busybox:1.36", "imagePullPolicy": "Always"}]
        },
    }
    path = tmp_path / "web.yaml"
    path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    kubectl.run("apply", "-f", str(path))
    daemon.wait_running("web")
    manifest["spec"]["containers"][0]["image"] = "busybox:1.37"
    path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    assert kubectl.run("apply", "-f", str(path)).stdout.strip() == "pod/web configured"
    wait_image_running(daemon, "web", "busybox:1.37")
    reasons = [r for _, r, m in messages(daemon, "web") if "1.37" in m or r == "Killing"]
    assert reasons == ["Killing", "Pulling", "Pulled"]


def test_other_spec_fields_stay_immutable(kubectl: Kubectl, daemon: RunningDaemon) -> None:
    daemon.create_pod("web", "busybox:1.36")
    out = kubectl.run(
        "patch", "pod", "web", "-p", '{"spec":{"restartPolicy":"Never"}}', check=False
    )
    assert out.returncode == 1
    assert (
        'The Pod "web" is invalid: spec: Forbidden: pod updates may not change fields other '
        "than `spec.containers[*].image`,`spec.initContainers[*].image`,"
        "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
        "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
        "previously negative)"
    ) in out.stderr
    out = kubectl.run("set", "image", "pod/web", "c0=", check=False)
    assert out.returncode == 1
    assert daemon.pod("web")["spec"]["containers"][0]["image"] == "busybox:1.36"


def test_client_patch_fixes_a_pod_in_back_off_without_killing(daemon: RunningDaemon) -> None:
    core = client.CoreV1Api(client.ApiClient(client.Configuration(host=daemon.base_url)))
    daemon.api(
        "POST",
        "/api/v1/namespaces/default/pods",
        {
            "metadata": {"name": "ghost"},
            "spec": {"containers": [{"name": "app", "image": MISSING_IMAGE}]},
        },
    )
    daemon.wait_waiting_reason("ghost", "ImagePullBackOff", "ErrImagePull")
    patch = {"spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}}
    core.patch_namespaced_pod("ghost", "default", patch)
    status = wait_image_running(daemon, "ghost", "busybox:1.36")
    assert status["restartCount"] == 0  # it never ran: nothing to kill
    assert "Killing" not in [r for _, r, _ in messages(daemon, "ghost")]
