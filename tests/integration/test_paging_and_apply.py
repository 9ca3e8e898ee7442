"""`kubectl get --chunk-size` and the client's paginated list see every object; `kubectl apply`
of a manifest with `creationTimestamp: null` (as `kubectl create --dry-run=client -o yaml`
writes it) works twice."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import Kubectl
from kubernetes import client

pytestmark = pytest.mark.integration


def test_chunked_lists_hold_everything(kubectl: Kubectl, core: client.CoreV1Api) -> None:
    names = [f"s{i}" for i in range(5)]
    for name in names:
        kubectl.run("create", "secret", "generic", name, "--from-literal=k=v")
    listed = kubectl.run("get", "secrets", "--chunk-size=2", "-o", "name").stdout.split()
    assert listed == [f"secret/{n}" for n in names]
    table = kubectl.run("get", "secrets", "--chunk-size=2", "--no-headers").stdout.splitlines()
    assert [line.split()[0] for line in table] == names

    seen, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_secret("default", limit=2, _continue=token)
        pages += 1
        seen += [s.metadata.name for s in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert (seen, pages) == (names, 3)


def test_apply_twice_with_a_null_creation_timestamp(kubectl: Kubectl, tmp_path: Path) -> None:
    generated = kubectl.run(
        "run", "w", "--image=nginx:1.27", "--dry-run=client", "-o", "yaml"
    ).stdout
    assert "creationTimestamp: null" in generated
    pod = tmp_path / "pod.yaml"
    pod.write_text(generated, encoding="utf-8")
    secret = kubectl.run(
        "create", "secret", "generic", "s", "--from-literal=k=v", "--dry-run=client", "-o", "yaml"
    ).stdout
    (tmp_path / "secret.yaml").write_text(secret, encoding="utf-8")
    for path in (pod, tmp_path / "secret.yaml"):
        first = kubectl.run("apply", "-f", str(path))
        assert first.stdout.strip().endswith("created")
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        doc["metadata"]["labels"] = {**(doc["metadata"].get("labels") or {}), "again": "yes"}
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        second = kubectl.run("apply", "-f", str(path))
        assert second.stdout.strip().endswith("configured"), second
    labels = kubectl.run("get", "pod", "w", "-o", "jsonpath={.metadata.labels.again}").stdout
    assert labels == "yes"


def test_kubectl_json_patch_test_move_and_copy(kubectl: Kubectl) -> None:
    kubectl.run("create", "secret", "generic", "s", "--from-literal=k=v")
    kubectl.run("label", "secret", "s", "a=1")
    ops = (
        '[{"op":"test","path":"/metadata/labels/a","value":"1"},'
        '{"op":"move","from":"/metadata/labels/a","path":"/metadata/labels/b"},'
        '{"op":"copy","from":"/metadata/labels/b","path":"/metadata/labels/c"}]'
    )
    kubectl.run("patch", "secret", "s", "--type=json", "-p", ops)
    labels = kubectl.run("get", "secret", "s", "-o", "jsonpath={.metadata.labels}").stdout
    assert labels == '{"b":"1","c":"1"}'
    failed = kubectl.run(
        "patch",
        "secret",
        "s",
        "--type=json",
        "-p",
        '[{"op":"test","path":"/metadata/labels/b","value":"2"}]',
        check=False,
    )
    assert failed.returncode != 0
    assert (
        "The request is invalid: the server rejected our request due to an error in our request"
        in failed.stderr
    )
