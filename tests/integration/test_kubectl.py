"""The real kubectl against the daemon: create from YAML and JSON, STATUS columns, describe,
events, delete, the node's images, docker-registry secrets via a service account, Status errors.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MISSING_IMAGE, NODE, PRIVATE_IMAGE, Kubectl, RunningDaemon, poll

pytestmark = pytest.mark.integration


def pod_manifest(name: str, image: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": image, **container}]},
    }


def write_yaml(path: Path, *docs: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    return str(path)


def status_column(kubectl: Kubectl, name: str) -> str:
    """The STATUS cell of `kubectl get pod NAME` (the human table, not -o json)."""
    out = kubectl.run("get", "pod", name, "--no-headers").stdout.split()
    assert out[0] == name, out
    return out[2]


def watch_statuses(kubectl: Kubectl, name: str, until: str, timeout: float = 15.0) -> list[str]:
    """Every distinct STATUS seen, in order, polling until `until` shows up.

    Only for states that last (Running, ImagePullBackOff): a state that lasts one sync can fall
    between two polls, so those are read from `kubectl.watch_pod` instead.
    """
    seen: list[str] = []

    def probe() -> bool:
        status = status_column(kubectl, name)
        if not seen or seen[-1] != status:
            seen.append(status)
        return status == until

    poll(probe, timeout=timeout, interval=0.05, what=f"{name} STATUS {until} (seen {seen})")
    return seen


def test_create_from_yaml_and_json_runs_and_reports_images(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    created = kubectl.run(
        "create", "-f", write_yaml(tmp_path / "web.yaml", pod_manifest("web", "nginx:1.27"))
    )
    assert created.stdout.strip() == "pod/web created"
    json_file = tmp_path / "tools.json"
    json_file.write_text(json.dumps(pod_manifest("tools", "busybox:1.36")), encoding="utf-8")
    created = kubectl.run("create", "-f", str(json_file))
    assert created.stdout.strip() == "pod/tools created"

    for name in ("web", "tools"):
        watch_statuses(kubectl, name, "Running")
    table = kubectl.run("get", "pods").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["web"][1:3] == ["1/1", "Running"]
    assert rows["tools"][1:3] == ["1/1", "Running"]

    pod = yaml.safe_load(kubectl.run("get", "pod", "web", "-o", "yaml").stdout)
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"  # defaulted
    assert pod["spec"]["nodeName"] == NODE
    status = pod["status"]["containerStatuses"][0]
    assert "running" in status["state"]
    assert status["ready"] is True
    assert status["imageID"].startswith("docker.io/library/nginx@sha256:")
    assert pod["status"]["phase"] == "Running"

    node = yaml.safe_load(kubectl.run("get", "node", "-o", "yaml").stdout)
    assert node["kind"] == "List"
    names = {n for image in node["items"][0]["status"]["images"] for n in image["names"]}
    assert "docker.io/library/nginx:1.27" in names
    assert "docker.io/library/busybox:1.36" in names
    assert kubectl.run("get", "nodes", "--no-headers").stdout.split()[:2] == [NODE, "Ready"]

    # Pulled events, as `kubectl get events` lists them.
    events = kubectl.run("get", "events").stdout
    assert 'Pulling image "nginx:1.27"' in events
    assert 'Successfully pulled image "nginx:1.27"' in events


def test_missing_image_err_image_pull_then_back_off_with_events(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    with kubectl.watch_pod(daemon, "ghost") as watch:
        manifest = write_yaml(tmp_path / "p.yaml", pod_manifest("ghost", MISSING_IMAGE))
        kubectl.run("create", "-f", manifest)
        seen = watch.statuses_until("ImagePullBackOff")
    assert "ErrImagePull" in seen, seen
    assert seen.index("ErrImagePull") < seen.index("ImagePullBackOff"), seen
    assert set(seen) <= {"ContainerCreating", "Pending", "ErrImagePull", "ImagePullBackOff"}, seen

    pod = yaml.safe_load(kubectl.run("get", "pod", "ghost", "-o", "yaml").stdout)
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ImagePullBackOff"
    assert waiting["message"].startswith(
        f'Back-off pulling image "{MISSING_IMAGE}": ErrImagePull: '
    )
    assert pod["status"]["containerStatuses"][0]["imageID"] == ""
    assert pod["status"]["phase"] == "Pending"

    # The back-off is re-reported on every 1 s sync: kubectl aggregates it as (xN over ...).
    def described() -> str | None:
        out = kubectl.run("describe", "pod", "ghost").stdout
        return out if "(x2 over" in out or "(x3 over" in out else None

    out = poll(described, timeout=10, interval=0.3, what="an aggregated back-off event")
    assert "Reason:       ImagePullBackOff" in out
    events = out[out.index("Events:") :]
    assert f'Pulling image "{MISSING_IMAGE}"' in events
    assert f'Failed to pull image "{MISSING_IMAGE}"' in events
    assert f'Back-off pulling image "{MISSING_IMAGE}"' in events
    assert "Error: ErrImagePull" in events
    assert "Error: ImagePullBackOff" in events
    backoff_line = next(line for line in events.splitlines() if "Back-off pulling" in line)
    assert " over " in backoff_line, backoff_line
    assert "BackOff" in backoff_line, backoff_line

    listed = kubectl.run("get", "events").stdout.splitlines()
    assert listed[0].split()[:4] == ["LAST", "SEEN", "TYPE", "REASON"]
    backoffs = [line for line in listed if "pod/ghost" in line and "BackOff" in line]
    assert backoffs, listed
    failed = [line for line in listed if "pod/ghost" in line and "Failed to pull image" in line]
    assert failed, listed
    assert "Warning" in failed[0], failed
    selected = kubectl.run(
        "get", "events", "--field-selector", "involvedObject.name=ghost,reason=Pulling"
    ).stdout
    assert "Pulling image" in selected
    assert "Back-off" not in selected


def test_never_pull_and_init_container_failures(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    never = pod_manifest(
        "never", "redis:7.4", imagePullPolicy="Never"
    )  # in the registry, not on the node
    init = pod_manifest("initbad", "busybox:1.36")
    init["spec"]["initContainers"] = [{"name": "setup", "image": MISSING_IMAGE}]
    with kubectl.watch_pod(daemon, "initbad") as watch:
        kubectl.run("create", "-f", write_yaml(tmp_path / "both.yaml", never, init))
        seen = watch.statuses_until("Init:ImagePullBackOff")
    watch_statuses(kubectl, "never", "ErrImageNeverPull")
    assert "Init:ErrImagePull" in seen, seen

    pod = yaml.safe_load(kubectl.run("get", "pod", "never", "-o", "yaml").stdout)
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ErrImageNeverPull"
    assert waiting["message"] == (
        'Container image "redis:7.4" is not present with pull policy of Never'
    )
    pod = yaml.safe_load(kubectl.run("get", "pod", "initbad", "-o", "yaml").stdout)
    assert pod["status"]["initContainerStatuses"][0]["state"]["waiting"]["reason"] in {
        "ErrImagePull",
        "ImagePullBackOff",
    }
    # The app container waits for the init container and never pulls.
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == (
        "PodInitializing"
    )
    events = kubectl.run("describe", "pod", "initbad").stdout
    assert 'Pulling image "busybox:1.36"' not in events
    assert f'Failed to pull image "{MISSING_IMAGE}"' in events


def test_delete_pod_then_get_is_not_found(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl.run(
        "create", "-f", write_yaml(tmp_path / "p.yaml", pod_manifest("doomed", MISSING_IMAGE))
    )
    watch_statuses(kubectl, "doomed", "ImagePullBackOff")
    deleted = kubectl.run("delete", "pod", "doomed")
    assert deleted.stdout.strip() == 'pod "doomed" deleted'
    gone = kubectl.run("get", "pod", "doomed", check=False)
    assert gone.returncode == 1
    assert 'Error from server (NotFound): pods "doomed" not found' in gone.stderr
    listed = kubectl.run("get", "pods")
    assert "doomed" not in listed.stdout
    assert "No resources found in default namespace." in listed.stderr


def test_private_image_via_service_account_pull_secret(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    out = kubectl.run(
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "--docker-server=registry.example.com",
        "--docker-username=robot",
        "--docker-password=s3cret",
    )
    assert out.stdout.strip() == "secret/regcred created"
    assert kubectl.run("create", "serviceaccount", "builder").stdout.strip() == (
        "serviceaccount/builder created"
    )
    patched = kubectl.run(
        "patch", "serviceaccount", "builder", "-p", '{"imagePullSecrets":[{"name":"regcred"}]}'
    )
    assert patched.stdout.strip() == "serviceaccount/builder patched"
    account = yaml.safe_load(kubectl.run("get", "serviceaccount", "builder", "-o", "yaml").stdout)
    assert account["imagePullSecrets"] == [{"name": "regcred"}]
    secrets = kubectl.run("get", "secrets", "--no-headers").stdout.split()
    assert secrets[:3] == ["regcred", "kubernetes.io/dockerconfigjson", "1"]

    # Without the secret. imagePullPolicy Always: every attempt goes to the registry, so the
    # result does not depend on whether the other pod already brought the image to the node
    # (with IfNotPresent a 1.32 kubelet lets any pod use an image another pod pulled).
    anonymous = pod_manifest("anonymous", PRIVATE_IMAGE, imagePullPolicy="Always")
    with_sa = pod_manifest("robot", PRIVATE_IMAGE)
    with_sa["spec"]["serviceAccountName"] = "builder"
    kubectl.run("create", "-f", write_yaml(tmp_path / "priv.yaml", anonymous, with_sa))

    watch_statuses(kubectl, "robot", "Running")
    pod = yaml.safe_load(kubectl.run("get", "pod", "robot", "-o", "yaml").stdout)
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]  # ServiceAccount admission
    assert pod["status"]["containerStatuses"][0]["imageID"].startswith(
        "registry.example.com/team/private@sha256:"
    )

    def anonymous_failed() -> str | None:
        status = status_column(kubectl, "anonymous")
        return status if status in {"ErrImagePull", "ImagePullBackOff"} else None

    poll(anonymous_failed, timeout=10, what="anonymous pod failing to pull")
    time.sleep(1.2)  # a requeue later it is still not running
    assert status_column(kubectl, "anonymous") in {"ErrImagePull", "ImagePullBackOff"}
    events = kubectl.run("describe", "pod", "anonymous").stdout
    assert "authorization failed" in events
    assert f'Failed to pull image "{PRIVATE_IMAGE}"' in events
    assert PRIVATE_IMAGE in {
        n
        for image in daemon.api("GET", f"/api/v1/nodes/{NODE}")["status"]["images"]
        for n in image["names"]
    }


def test_bad_input_is_answered_with_status_texts(kubectl: Kubectl, tmp_path: Path) -> None:
    empty = pod_manifest("x", "busybox:1.36")
    empty["spec"]["containers"] = []
    result = kubectl.run("create", "-f", write_yaml(tmp_path / "x.yaml", empty), check=False)
    assert result.returncode == 1
    assert 'The Pod "x" is invalid' in result.stderr
    assert "spec.containers: Required value" in result.stderr

    path = write_yaml(tmp_path / "dup.yaml", pod_manifest("dup", "busybox:1.36"))
    kubectl.run("create", "-f", path)
    again = kubectl.run("create", "-f", path, check=False)
    assert again.returncode == 1
    assert "Error from server (AlreadyExists)" in again.stderr
    assert 'pods "dup" already exists' in again.stderr

    nope = kubectl.run("get", "pod", "nope", check=False)
    assert nope.returncode == 1
    assert 'Error from server (NotFound): pods "nope" not found' in nope.stderr

    bad_name = pod_manifest("badref", "Not/A:Valid:Image")
    kubectl.run("create", "-f", write_yaml(tmp_path / "badref.yaml", bad_name))
    assert watch_statuses(kubectl, "badref", "InvalidImageName")[-1] == "InvalidImageName"

    duplicate_sa = kubectl.run("create", "serviceaccount", "default", check=False)
    assert duplicate_sa.returncode == 1
    assert 'serviceaccounts "default" already exists' in duplicate_sa.stderr

    # Python's own error texts never reach the user: the apiserver's (Go's) words do.
    secret = kubectl.run(
        "create",
        "secret",
        "generic",
        "bad",
        "--type=kubernetes.io/dockerconfigjson",
        "--from-literal=.dockerconfigjson=notjson",
        check=False,
    )
    assert secret.stderr.strip() == (
        'error: failed to create secret Secret "bad" is invalid: data[.dockerconfigjson]: '
        "Invalid value: \"<secret contents redacted>\": invalid character 'o' in literal null "
        "(expecting 'u')"
    )
    broken = tmp_path / "broken.json"
    broken.write_text('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": }}')
    raw = kubectl.run(
        "create", "--raw", "/api/v1/namespaces/default/pods", "-f", str(broken), check=False
    )
    assert raw.stderr.strip() == (
        "Error from server (BadRequest): the object provided is unrecognized (must be of type "
        "Pod): couldn't get version/kind; json parse error: invalid character '}' looking for "
        'beginning of value ({"apiVersion": "v1", "kind": " ...)'
    )
