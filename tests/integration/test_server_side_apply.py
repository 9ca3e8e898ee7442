"""`kubectl apply --server-side`: an apply of an object that does not exist creates it (through
the same admission as a create), and applying the same file again changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import Kubectl, RunningDaemon

pytestmark = pytest.mark.integration

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "ss", "labels": {"app": "ss"}},
    "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
}


def test_server_side_apply_creates_a_missing_pod_then_leaves_it_unchanged(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    path = tmp_path / "ss.yaml"
    path.write_text(yaml.safe_dump(POD), encoding="utf-8")
    dry = kubectl.run("apply", "--server-side", "--dry-run=server", "-f", str(path))
    assert dry.stdout.strip() == "pod/ss serverside-applied (server dry run)"
    assert "ss" not in daemon.pods()

    created = kubectl.run("apply", "--server-side", "-f", str(path))
    assert created.stdout.strip() == "pod/ss serverside-applied"
    pod = daemon.wait_running("ss")
    assert pod["metadata"]["labels"] == {"app": "ss"}
    version = pod["metadata"]["resourceVersion"]

    again = kubectl.run("apply", "--server-side", "-f", str(path))
    assert again.stdout.strip() == "pod/ss serverside-applied"
    assert daemon.pod("ss")["metadata"]["resourceVersion"] == version


def test_server_side_apply_of_an_invalid_new_pod_is_refused_as_a_create_would_be(
    kubectl: Kubectl, daemon: RunningDaemon, tmp_path: Path
) -> None:
    bad = {**POD, "spec": {"containers": [{"name": "c"}]}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    refused = kubectl.run("apply", "--server-side", "-f", str(path), check=False)
    assert refused.returncode == 1
    assert "spec.containers[0].image: Required value" in refused.stderr
    assert "ss" not in daemon.pods()
