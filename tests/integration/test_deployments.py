"""Deployments with the real kubectl: create, rollout status, set image through the pull queue,
rollout undo, scale, delete with its ReplicaSets and pods, explain, a restart, the Python client.

A rollout's bounds are checked on every state of the ReplicaSets a watch (opened before the
change) shows: never more than replicas + maxSurge pods wanted, never fewer than replicas -
maxUnavailable available. Waits are kubectl's own (`rollout status`, `wait --for=delete`) or
on watched events, never on the clock.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import (
    _OPENER,
    DaemonFactory,
    Kubectl,
    RunningDaemon,
    fast_config,
    poll,
)
from kubernetes import client

pytestmark = pytest.mark.integration

NEW_IMAGE = "nginx:1.27-alpine"


class RecordedWatch:
    """Every event of a watch, collected on a thread from the moment it is opened; the stream
    ends when the daemon stops (SIGTERM ends every watch), and the thread with it."""

    def __init__(self, daemon: RunningDaemon, path: str) -> None:
        request = urllib.request.Request(  # noqa: S310 - loopback only
            f"{daemon.base_url}{path}?watch=1&timeoutSeconds=600"
        )
        self._response = _OPENER.open(request, timeout=600)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with self._response:
            for line in self._response:
                event = json.loads(line)
                with self._lock:
                    self.events.append((event["type"], event["object"]))

    def snapshot(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self.events)


@pytest.fixture
def rs_watch(daemon: RunningDaemon) -> RecordedWatch:
    return RecordedWatch(daemon, "/apis/apps/v1/namespaces/default/replicasets")


def states(events: list[tuple[str, dict[str, Any]]]) -> Iterator[dict[str, dict[str, Any]]]:
    """The ReplicaSets as they stood after each event."""
    current: dict[str, dict[str, Any]] = {}
    for change, rs in events:
        if change == "DELETED":
            current.pop(rs["metadata"]["name"], None)
        else:
            current[rs["metadata"]["name"]] = rs
        yield dict(current)


def active_pods(daemon: RunningDaemon) -> dict[str, dict[str, Any]]:
    """The pods a ReplicaSet counts: deletion is graceful, so a rollout or scale-down can be
    complete while the pods it deleted are still listed, Terminating, as kubectl shows them."""
    return {n: p for n, p in daemon.pods().items() if "deletionTimestamp" not in p["metadata"]}


def pod_images(daemon: RunningDaemon) -> dict[str, str]:
    return {name: p["spec"]["containers"][0]["image"] for name, p in active_pods(daemon).items()}


def rolled_out(kubectl: Kubectl) -> str:
    out = kubectl.run("rollout", "status", "deployment/web", "--timeout=60s").stdout
    assert out.strip().endswith('deployment "web" successfully rolled out'), out
    return out


def test_create_rollout_status_and_get(kubectl: Kubectl, daemon: RunningDaemon) -> None:
    out = kubectl.run("create", "deployment", "web", "--image=nginx:1.27", "--replicas=5")
    assert out.stdout.strip() == "deployment.apps/web created"
    rolled_out(kubectl)
    row = kubectl.run("get", "deployment", "web", "--no-headers").stdout.split()
    assert row[:4] == ["web", "5/5", "5", "5"]
    [rs_row] = kubectl.run("get", "rs", "--no-headers").stdout.strip().splitlines()
    assert rs_row.split()[1:4] == ["5", "5", "5"]
    images = pod_images(daemon)
    assert len(images) == 5
    assert set(images.values()) == {"nginx:1.27"}
    described = kubectl.run("describe", "deployment", "web").stdout
    assert "NewReplicaSetAvailable" in described
    assert "Scaled up replica set web-" in described


def test_set_image_rolls_out_through_the_pull_queue_then_undo(
    kubectl: Kubectl, daemon: RunningDaemon, rs_watch: RecordedWatch
) -> None:
    kubectl.run("create", "deployment", "web", "--image=nginx:1.27", "--replicas=8")
    rolled_out(kubectl)
    [old] = {rs["metadata"]["name"] for _, rs in rs_watch.snapshot()}
    out = kubectl.run("set", "image", "deployment/web", f"nginx={NEW_IMAGE}")
    assert out.stdout.strip() == "deployment.apps/web image updated"
    rolled_out(kubectl)
    assert set(pod_images(daemon).values()) == {NEW_IMAGE}
    # 8 replicas, 25%/25%: surge 2 (rounded up), unavailable 2 (rounded down).
    seen_both = False
    for state in states(rs_watch.snapshot()):
        wanted = sum(rs["spec"]["replicas"] for rs in state.values())
        available = sum(
            (rs.get("status") or {}).get("availableReplicas", 0) for rs in state.values()
        )
        assert wanted <= 8 + 2, state
        if len(state) == 2:
            seen_both = True
            assert available >= 8 - 2, state
    assert seen_both
    # The new pods pulled the new image through the node's queue, as the kubelet's events say.
    new_pods = [n for n, image in pod_images(daemon).items() if image == NEW_IMAGE]
    reasons = {e["reason"] for name in new_pods for e in daemon.events(name)}
    assert "Pulled" in reasons
    pulled_new = [
        e["message"] for name in new_pods for e in daemon.events(name) if e["reason"] == "Pulling"
    ]
    assert pulled_new, "no pod pulled the new image"
    assert all(NEW_IMAGE in m for m in pulled_new)
    assert any(NEW_IMAGE in name for name in daemon.node_image_names())

    out = kubectl.run("rollout", "undo", "deployment/web")
    assert out.stdout.strip() == "deployment.apps/web rolled back"
    rolled_out(kubectl)
    assert set(pod_images(daemon).values()) == {"nginx:1.27"}
    history = kubectl.run("rollout", "history", "deployment/web").stdout.split()
    assert "2" in history
    assert "3" in history
    assert "1" not in history  # revision 1 became 3
    sets = {rs["metadata"]["name"]: rs for _, rs in rs_watch.snapshot()}
    assert sets[old]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"


def test_rollout_history_shows_each_revisions_change_cause(
    kubectl: Kubectl, daemon: RunningDaemon
) -> None:
    cause = "kubernetes.io/change-cause"
    kubectl.run("create", "deployment", "web", "--image=nginx:1.27")
    kubectl.run("annotate", "deployment/web", f"{cause}=first release")
    rolled_out(kubectl)
    kubectl.run("set", "image", "deployment/web", f"nginx={NEW_IMAGE}")
    kubectl.run("annotate", "--overwrite", "deployment/web", f"{cause}=new image")
    rolled_out(kubectl)

    def history() -> list[list[str]] | None:
        out = kubectl.run("rollout", "history", "deployment/web").stdout
        rows = [line.split(None, 1) for line in out.splitlines()[2:] if line.strip()]
        return rows if all(cells[1] != "<none>" for cells in rows) else None

    # The controller copies the Deployment's annotations at its next sync: wait for it.
    rows = poll(history, timeout=15, what="both change causes in rollout history")
    assert rows == [["1", "first release"], ["2", "new image"]]


def test_scale_then_delete_cascades(kubectl: Kubectl, daemon: RunningDaemon) -> None:
    kubectl.run("create", "deployment", "web", "--image=busybox:1.36", "--replicas=3")
    rolled_out(kubectl)
    assert kubectl.run("scale", "deployment/web", "--replicas=6").stdout.strip() == (
        "deployment.apps/web scaled"
    )
    rolled_out(kubectl)
    assert len(active_pods(daemon)) == 6
    kubectl.run("scale", "deployment/web", "--replicas=1")
    rolled_out(kubectl)
    assert len(active_pods(daemon)) == 1
    out = kubectl.run("delete", "deployment", "web")
    assert out.stdout.strip() == 'deployment.apps "web" deleted'
    kubectl.run("wait", "--for=delete", "pod", "-l", "app=web", "--timeout=30s")
    assert (
        kubectl.run("get", "rs,pods").stderr.strip() == "No resources found in default namespace."
    )


def test_explain_and_dry_run(kubectl: Kubectl, daemon: RunningDaemon) -> None:
    explained = kubectl.run("explain", "deployment.spec.strategy.rollingUpdate.maxSurge").stdout
    assert "GROUP:      apps" in explained
    assert "maximum number of pods that can be scheduled above" in explained
    out = kubectl.run(
        "create", "deployment", "web", "--image=nginx:1.27", "--replicas=2", "--dry-run=server"
    )
    assert out.stdout.strip() == "deployment.apps/web created (server dry run)"
    assert kubectl.run("get", "deploy,rs,pods").stderr.strip() == (
        "No resources found in default namespace."
    )
    assert daemon.pods() == {}


def test_a_restart_keeps_the_deployment_and_its_pods(
    kubectl: Kubectl, daemon: RunningDaemon, daemon_factory: DaemonFactory
) -> None:
    kubectl.run("create", "deployment", "web", "--image=busybox:1.36", "--replicas=4")
    rolled_out(kubectl)
    before = set(daemon.pods())
    assert daemon.terminate() == 0
    again = daemon_factory(fast_config(), state_dir=daemon.state_dir)
    after_kubectl = kubectl.with_flags(server=again.base_url)
    rolled_out(after_kubectl)
    assert set(again.pods()) == before  # the same pods: none created twice
    after_kubectl.run("scale", "deployment/web", "--replicas=5")
    rolled_out(after_kubectl)
    assert len(active_pods(again)) == 5


def test_python_client_reads_and_scales_a_deployment(daemon: RunningDaemon) -> None:
    configuration = client.Configuration(host=daemon.base_url)
    with client.ApiClient(configuration) as api_client:
        apps = client.AppsV1Api(api_client)
        body = client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels={"app": "web"}),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={"app": "web"}),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name="app", image="busybox:1.36")]
                    ),
                ),
            ),
        )
        created = apps.create_namespaced_deployment("default", body)
        assert created.spec.strategy.type == "RollingUpdate"

        def available() -> int:
            status = apps.read_namespaced_deployment_status("web", "default").status
            return int(status.available_replicas or 0)

        poll(lambda: available() == 2, timeout=30, what="2 available replicas")
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
        poll(lambda: available() == 3, timeout=30, what="3 available replicas")
        [rs] = apps.list_namespaced_replica_set("default").items
        assert rs.status.ready_replicas == 3
        assert rs.metadata.owner_references[0].name == "web"
