"""Graceful pod deletion with the real kubectl and the `kubernetes` client: `kubectl get -w`
shows Terminating, the kubelet's `Killing` event, `--grace-period`/`--now`/`--force`, preconditions,
and a pull cancelled by the deletion counted as a finished (failed) pull in /metrics."""

from __future__ import annotations

import json

import pytest
from conftest import SLOW_IMAGE, DaemonFactory, Kubectl, RunningDaemon, poll, slow_config
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration


def test_kubectl_delete_shows_terminating_then_the_pod_is_gone(
    kubectl: Kubectl, daemon: RunningDaemon
) -> None:
    with kubectl.watch_pod(daemon, "w") as watch:
        kubectl.run("run", "w", "--image=nginx:1.27")
        watch.statuses_until("Running")
        deleted = kubectl.run("delete", "pod", "w", "--timeout=60s")
        assert deleted.stdout.strip() == 'pod "w" deleted'
        assert watch.statuses_until("Terminating")[-1] == "Terminating"
    gone = kubectl.run("get", "pod", "w", check=False)
    assert 'Error from server (NotFound): pods "w" not found' in gone.stderr
    events = kubectl.run(
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=w,reason=Killing",
        "-o",
        "jsonpath={.items[*].message}",
    )
    assert events.stdout == "Stopping container w"


@pytest.mark.parametrize(
    ("flags", "grace"),
    [(("--grace-period=5",), 5), (("--now",), 1), (("--force", "--grace-period=0"), 0)],
)
def test_kubectl_grace_period_flags(
    kubectl: Kubectl, core: client.CoreV1Api, flags: tuple[str, ...], grace: int
) -> None:
    kubectl.run("run", "w", "--image=nginx:1.27")
    kubectl.run("wait", "--for=condition=Ready", "pod/w", "--timeout=30s")
    version = core.list_namespaced_pod("default").metadata.resource_version
    kubectl.run("delete", "pod", "w", *flags)
    stream = watch.Watch()
    seen = []
    for event in stream.stream(
        core.list_namespaced_pod, "default", resource_version=version, timeout_seconds=30
    ):
        seen.append((event["type"], event["object"].metadata.deletion_grace_period_seconds))
        if event["type"] == "DELETED":
            stream.stop()
    # Forced: the object goes at once; otherwise it is marked first, then its stopped
    # container is reported, then it goes.
    expected = [("DELETED", 0)] if grace == 0 else [("MODIFIED", grace)] * 2 + [("DELETED", grace)]
    assert seen == expected


def test_client_delete_preconditions(core: client.CoreV1Api, kubectl: Kubectl) -> None:
    kubectl.run("run", "w", "--image=nginx:1.27")
    pod = core.read_namespaced_pod("w", "default")
    with pytest.raises(ApiException) as conflict:
        core.delete_namespaced_pod(
            "w",
            "default",
            body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="x")),
        )
    assert conflict.value.status == 409
    assert json.loads(conflict.value.body)["message"] == (
        'Operation cannot be fulfilled on pods "w": Precondition failed: UID in precondition: x, '
        f"UID in object meta: {pod.metadata.uid}"
    )
    deleted = core.delete_namespaced_pod(
        "w",
        "default",
        body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=pod.metadata.uid)),
    )
    assert deleted.metadata.deletion_timestamp is not None


def test_a_pull_cancelled_by_a_deletion_is_a_finished_pull(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(slow_config())
    for name in ("a", "b", "c"):
        daemon.create_pod(name, SLOW_IMAGE)
    poll(lambda: daemon.pulls()["inFlight"], timeout=10, what="a pull in flight")
    for name in ("a", "b", "c"):
        daemon.api("DELETE", f"/api/v1/namespaces/default/pods/{name}")
    poll(lambda: not daemon.pods(), timeout=20, what="the pods gone")
    status, text = daemon.request("GET", "/metrics")
    assert status == 200
    started = finished = 0.0
    for line in str(text).splitlines():
        if line.startswith("kubesim_image_pulls_started_total "):
            started = float(line.split()[1])
        elif line.startswith("kubesim_image_pulls_total{"):
            finished += float(line.split()[1])
    assert started >= 1
    assert started == finished
