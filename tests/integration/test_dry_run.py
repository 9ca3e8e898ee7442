"""`--dry-run=server` with the real kubectl and the `kubernetes` client: every write of every
kind is checked and answered as a real one, and nothing is stored, watched or started."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Kubectl, RunningDaemon
from kubernetes import client

pytestmark = pytest.mark.integration

PODS = "/api/v1/namespaces/default/pods"
SECRETS = "/api/v1/namespaces/default/secrets"


def pod_manifest(name: str, image: str = "nginx:1.27") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }


def write_yaml(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def daemon_version(daemon: RunningDaemon) -> str:
    """The daemon's resourceVersion: every stored write, events included, consumes one."""
    return str(daemon.api("GET", SECRETS)["metadata"]["resourceVersion"])


@contextmanager
def pod_watch(daemon: RunningDaemon, name: str) -> Iterator[Iterator[dict[str, Any]]]:
    """A raw watch on one pod from the current version: only changes, no initial ADDED."""
    version = daemon_version(daemon)
    url = (
        f"{daemon.base_url}{PODS}?watch=1&resourceVersion={version}"
        f"&fieldSelector=metadata.name%3D{name}"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    before = daemon.open_watches()
    with opener.open(url, timeout=20) as response:
        # The headers are out only once the watch is registered and subscribed.
        assert daemon.open_watches() == before + 1

        def lines() -> Iterator[dict[str, Any]]:
            for line in response:
                yield json.loads(line)

        yield lines()


def test_delete_dry_run_leaves_the_pod_running(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    kubectl.run("create", "-f", write_yaml(tmp_path / "web.yaml", pod_manifest("web")))
    before = daemon.wait_running("web")
    version = daemon_version(daemon)
    out = kubectl.run("delete", "pod", "web", "--dry-run=server")
    assert out.stdout.strip() == 'pod "web" deleted (server dry run)'
    after = daemon.pod("web")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "deletionTimestamp" not in after["metadata"]
    assert after["status"]["phase"] == "Running"  # its worker was not stopped
    assert daemon_version(daemon) == version
    assert kubectl.run("get", "pod", "web", "--no-headers").stdout.split()[:3] == [
        "web",
        "1/1",
        "Running",
    ]


def test_create_dry_run_creates_nothing_and_answers_the_defaulted_pod(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    version = daemon_version(daemon)
    manifest = write_yaml(tmp_path / "p.yaml", pod_manifest("ghost"))
    out = kubectl.run("create", "-f", manifest, "--dry-run=server")
    assert out.stdout.strip() == "pod/ghost created (server dry run)"
    shown = yaml.safe_load(
        kubectl.run("create", "-f", manifest, "--dry-run=server", "-o", "yaml").stdout
    )
    # Defaulted and admitted as a real create is, with no resourceVersion consumed.
    assert shown["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert shown["spec"]["serviceAccountName"] == "default"
    assert shown["metadata"]["uid"]
    assert "resourceVersion" not in shown["metadata"]
    missing = kubectl.run("get", "pod", "ghost", check=False)
    assert missing.returncode == 1
    assert 'pods "ghost" not found' in missing.stderr
    assert daemon.pods() == {}
    assert daemon.events("ghost") == []  # no pod worker ever synced it
    assert daemon_version(daemon) == version


def test_create_dry_run_is_refused_as_a_real_create(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    bad = pod_manifest("Bad_Name")
    real = kubectl.run("create", "-f", write_yaml(tmp_path / "a.yaml", bad), check=False)
    dry = kubectl.run(
        "create", "-f", write_yaml(tmp_path / "b.yaml", bad), "--dry-run=server", check=False
    )
    assert real.returncode == dry.returncode == 1
    assert "is invalid" in real.stderr
    assert dry.stderr.replace("b.yaml", "a.yaml") == real.stderr
    kubectl.run("create", "-f", write_yaml(tmp_path / "web.yaml", pod_manifest("web")))
    exists = kubectl.run(
        "create", "-f", str(tmp_path / "web.yaml"), "--dry-run=server", check=False
    )
    assert 'pods "web" already exists' in exists.stderr


def test_label_dry_run_changes_nothing_and_sends_no_watch_event(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    kubectl.run("create", "-f", write_yaml(tmp_path / "web.yaml", pod_manifest("web")))
    before = daemon.wait_running("web")
    with pod_watch(daemon, "web") as changes:
        out = kubectl.run("label", "pod", "web", "a=b", "--dry-run=server", "-o", "json")
        answered = json.loads(out.stdout)
        assert answered["metadata"]["labels"] == {"app": "web", "a": "b"}
        assert answered["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        kubectl.run("label", "pod", "web", "real=yes")
        first = next(changes)
    # The first change the watch saw is the real label: the dry run sent none.
    assert first["type"] == "MODIFIED"
    assert first["object"]["metadata"]["labels"] == {"app": "web", "real": "yes"}
    assert daemon.pod("web")["metadata"]["labels"] == {"app": "web", "real": "yes"}


def test_secret_dry_runs_leave_secrets_untouched(kubectl: Kubectl, daemon: RunningDaemon) -> None:
    version = daemon_version(daemon)
    out = kubectl.run(
        "create", "secret", "generic", "ghost", "--from-literal=k=v", "--dry-run=server"
    )
    assert out.stdout.strip() == "secret/ghost created (server dry run)"
    assert daemon.request("GET", f"{SECRETS}/ghost")[0] == 404
    assert daemon_version(daemon) == version

    kubectl.run("create", "secret", "generic", "keep", "--from-literal=k=v")
    stored = daemon.api("GET", f"{SECRETS}/keep")
    version = daemon_version(daemon)
    kubectl.run("label", "secret", "keep", "a=b", "--dry-run=server")
    out = kubectl.run("delete", "secret", "keep", "--dry-run=server")
    assert out.stdout.strip() == 'secret "keep" deleted (server dry run)'
    assert daemon.api("GET", f"{SECRETS}/keep") == stored
    assert daemon_version(daemon) == version


def test_service_account_and_namespace_dry_runs(kubectl: Kubectl, daemon: RunningDaemon) -> None:
    version = daemon_version(daemon)
    kubectl.run("create", "serviceaccount", "builder", "--dry-run=server")
    kubectl.run("create", "namespace", "team", "--dry-run=server")
    assert kubectl.run("get", "serviceaccount", "builder", check=False).returncode == 1
    assert kubectl.run("get", "namespace", "team", check=False).returncode == 1
    out = kubectl.run("delete", "serviceaccount", "default", "--dry-run=server")
    assert out.stdout.strip() == 'serviceaccount "default" deleted (server dry run)'
    assert kubectl.run("get", "serviceaccount", "default", "--no-headers").stdout.startswith(
        "default"
    )
    assert daemon_version(daemon) == version


def test_python_client_dry_run_and_an_unknown_value(daemon: RunningDaemon) -> None:
    configuration = client.Configuration(host=daemon.base_url)
    api = client.CoreV1Api(client.ApiClient(configuration))
    body = client.V1Pod(
        metadata=client.V1ObjectMeta(name="web", labels={"app": "web"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="nginx:1.27")]),
    )
    created = api.create_namespaced_pod("default", body, dry_run="All")
    assert created.metadata is not None
    assert created.metadata.name == "web"
    assert api.list_namespaced_pod("default").items == []
    api.create_namespaced_pod("default", body)
    api.delete_namespaced_pod("web", "default", dry_run="All")
    api.patch_namespaced_pod("web", "default", {"metadata": {"labels": {"x": "y"}}}, dry_run="All")
    pod = api.read_namespaced_pod("web", "default")
    assert pod.metadata is not None
    assert pod.metadata.labels == {"app": "web"}

    status, body = daemon.request("POST", f"{PODS}?dryRun=Some", pod_manifest("other"))
    assert status == 422
    assert body["message"] == (
        'CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: '
        '[]string{"Some"}: supported values: "All"'
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueNotSupported",
            "message": 'Unsupported value: []string{"Some"}: supported values: "All"',
            "field": "dryRun",
        }
    ]
    status, body = daemon.request("DELETE", f"{PODS}/web?dryRun=Some")
    assert status == 422
    assert body["message"].startswith('DeleteOptions.meta.k8s.io "" is invalid: dryRun:')
    assert daemon.pod("web")["metadata"]["name"] == "web"
