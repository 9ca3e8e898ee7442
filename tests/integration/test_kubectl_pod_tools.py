"""kubectl's pod tools against the daemon: debug, logs, exec, attach and port-forward.

What a new user tries on a cluster: each answers as a real cluster would, or with the apiserver's
or kubelet's own refusal; none panics kubectl or answers a generic 404. One daemon serves the
module (each test has its own pods). `kubectl drain` is in test_cluster_admin.py.
"""

from __future__ import annotations

import pytest
from conftest import MISSING_IMAGE, Kubectl, RunningDaemon

pytestmark = pytest.mark.integration


def run_pod(kubectl: Kubectl, daemon: RunningDaemon, name: str, image: str) -> None:
    kubectl.run("run", name, f"--image={image}")
    if image != MISSING_IMAGE:
        daemon.wait_running(name)


def test_debug_says_ephemeral_containers_are_disabled(
    shared_kubectl: Kubectl, shared_daemon: RunningDaemon
) -> None:
    run_pod(shared_kubectl, shared_daemon, "dbg", "busybox:1.36")
    result = shared_kubectl.run("debug", "dbg", "--image=busybox:1.36", check=False)
    assert result.returncode == 1
    assert "panic" not in result.stderr
    assert result.stderr.strip().endswith(
        "error: ephemeral containers are disabled for this cluster "
        '(error from server: "the server could not find the requested resource")'
    )


def test_logs_of_a_running_pod_are_empty(
    shared_kubectl: Kubectl, shared_daemon: RunningDaemon
) -> None:
    run_pod(shared_kubectl, shared_daemon, "quiet", "busybox:1.36")
    result = shared_kubectl.run("logs", "quiet")
    assert (result.stdout, result.stderr) == ("", "")


def test_logs_of_a_pod_stuck_on_its_image(
    shared_kubectl: Kubectl, shared_daemon: RunningDaemon
) -> None:
    run_pod(shared_kubectl, shared_daemon, "ipb", MISSING_IMAGE)
    shared_daemon.wait_waiting_reason("ipb", "ImagePullBackOff")
    result = shared_kubectl.run("logs", "ipb", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'Error from server (BadRequest): container "ipb" in pod "ipb" is waiting to start: '
        "trying and failing to pull image"
    )


@pytest.mark.parametrize(
    ("args", "verb"),
    [
        (("exec", "busy", "--", "ls"), "exec into container busy of pod busy"),
        (("attach", "busy"), "attach to container busy of pod busy"),
        (("port-forward", "busy", "18080:80"), "port-forward pod busy"),
    ],
)
def test_exec_attach_and_port_forward_say_nothing_runs(
    shared_kubectl: Kubectl, shared_daemon: RunningDaemon, args: tuple[str, ...], verb: str
) -> None:
    if "busy" not in shared_daemon.pods():
        run_pod(shared_kubectl, shared_daemon, "busy", "busybox:1.36")
    result = shared_kubectl.run(*args, check=False)
    assert result.returncode == 1
    assert f"cannot {verb}: kubesim-images simulates the kubelet's image manager" in result.stderr
    assert "runs no processes" in result.stderr
    assert "NotFound" not in result.stderr
