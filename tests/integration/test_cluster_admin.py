"""A cluster administrator's kubectl on the simulated nodes: `kubectl cordon/uncordon`, `label`,
`annotate` and `taint` of a node, `delete node`, the scheduler retrying pending pods when a node
changes (FailedScheduling, then Scheduled), `kubectl replace` of a Secret, DELETE on a
collection (`delete_collection_namespaced_pod`), and the deletable kube-node-lease namespace.

One daemon for the module (three nodes: small-0, small-1 labelled size=small, big-0 size=big);
each test's pods are deleted and the nodes restored after it, whatever order the tests run in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import DaemonFactory, Kubectl, RunningDaemon, _require_tool, fast_config, poll
from kubernetes import client

pytestmark = pytest.mark.integration

IMAGE = "busybox:1.36"
NODES = ("small-0", "small-1", "big-0")
CORDON_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
PREEMPTION = "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
STRATEGIC = "application/strategic-merge-patch+json"


def _config() -> dict[str, Any]:
    config = fast_config(
        nodePools=[
            {"name": "small", "count": 2, "labels": {"size": "small"}},
            {"name": "big", "count": 1, "labels": {"size": "big"}},
        ]
    )
    del config["node"]
    return config


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningDaemon, Kubectl]]:
    binary = _require_tool("kubectl", "the integration tests drive the real kubectl")
    tmp = tmp_path_factory.mktemp("cluster-admin")
    factory = DaemonFactory(tmp)
    try:
        daemon = factory(_config())
        yield daemon, Kubectl(binary, daemon.base_url, tmp / "home")
    finally:
        factory.close()


@pytest.fixture
def core_api(cluster: tuple[RunningDaemon, Kubectl]) -> Iterator[client.CoreV1Api]:
    configuration = client.Configuration(host=cluster[0].base_url)
    with client.ApiClient(configuration) as api_client:
        yield client.CoreV1Api(api_client)


@pytest.fixture
def daemon(
    cluster: tuple[RunningDaemon, Kubectl], core_api: client.CoreV1Api
) -> Iterator[RunningDaemon]:
    """The module's daemon; afterwards every node is uncordoned, untainted and without the
    `disk` label, and the test's pods are gone."""
    yield cluster[0]
    for name in NODES:
        core_api.patch_node(
            name,
            {
                "metadata": {"labels": {"disk": None}},
                "spec": {"unschedulable": None, "taints": None},
            },
            _content_type=STRATEGIC,
        )
    core_api.delete_collection_namespaced_pod("default", grace_period_seconds=0)


@pytest.fixture
def kubectl(cluster: tuple[RunningDaemon, Kubectl]) -> Kubectl:
    return cluster[1]


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"test": name}},
        "spec": {"containers": [{"name": "app", "image": IMAGE}], **spec},
    }


def _node_of(daemon: RunningDaemon, pod: str) -> str | None:
    return daemon.pod(pod)["spec"].get("nodeName")


def _scheduler_events(daemon: RunningDaemon, pod: str) -> list[tuple[str, str]]:
    return [
        (e["reason"], e["message"])
        for e in sorted(daemon.events(pod), key=lambda e: int(e["metadata"]["resourceVersion"]))
        if e["source"].get("component") == "default-scheduler"
    ]


def _statuses(kubectl: Kubectl) -> dict[str, str]:
    lines = kubectl.run("get", "nodes", "--no-headers").stdout.splitlines()
    return {cells[0]: cells[1] for cells in (line.split() for line in lines)}


def test_a_cordoned_node_takes_no_new_pod_until_uncordoned(
    daemon: RunningDaemon, kubectl: Kubectl
) -> None:
    assert kubectl.run("cordon", "small-0").stdout.strip() == "node/small-0 cordoned"
    assert _statuses(kubectl) == {
        "small-0": "Ready,SchedulingDisabled",
        "small-1": "Ready",
        "big-0": "Ready",
    }
    spec = daemon.api("GET", "/api/v1/nodes/small-0")["spec"]
    assert spec["unschedulable"] is True
    assert spec["taints"] == [CORDON_TAINT]  # as the node lifecycle controller taints it

    small = {"nodeSelector": {"size": "small"}}
    for name in ("c1", "c2"):
        daemon.api("POST", "/api/v1/namespaces/default/pods", _pod(name, **small))
    assert {_node_of(daemon, "c1"), _node_of(daemon, "c2")} == {"small-1"}

    kubectl.run("cordon", "small-1")
    daemon.api("POST", "/api/v1/namespaces/default/pods", _pod("c3", **small))
    refused = (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 node(s) "
        f"were unschedulable. {PREEMPTION}"
    )
    condition = daemon.pod("c3")["status"]["conditions"][0]
    assert (condition["reason"], condition["message"]) == ("Unschedulable", refused)
    # A pod that tolerates the cordon's taint is not kept off.
    tolerant = _pod("tolerant", tolerations=[{"operator": "Exists"}], **small)
    daemon.api("POST", "/api/v1/namespaces/default/pods", tolerant)
    assert _node_of(daemon, "tolerant") in {"small-0", "small-1"}

    assert kubectl.run("uncordon", "small-0").stdout.strip() == "node/small-0 uncordoned"
    assert "unschedulable" not in daemon.api("GET", "/api/v1/nodes/small-0")["spec"]
    # The pending pod is retried once the node changes: bound, then run by its kubelet.
    daemon.wait_running("c3")
    assert _node_of(daemon, "c3") == "small-0"
    assert _scheduler_events(daemon, "c3") == [
        ("FailedScheduling", refused),
        ("Scheduled", "Successfully assigned default/c3 to small-0"),
    ]


def test_a_label_put_on_a_node_places_a_pending_pod(
    daemon: RunningDaemon, kubectl: Kubectl
) -> None:
    daemon.api(
        "POST", "/api/v1/namespaces/default/pods", _pod("fast", nodeSelector={"disk": "nvme"})
    )
    assert daemon.pod("fast")["status"]["phase"] == "Pending"
    refused = f"0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. {PREEMPTION}"
    assert _scheduler_events(daemon, "fast") == [("FailedScheduling", refused)]

    assert kubectl.run("label", "node", "big-0", "disk=nvme").stdout.strip() == "node/big-0 labeled"
    assert kubectl.run("get", "nodes", "-l", "disk=nvme", "-o", "name").stdout.split() == [
        "node/big-0"
    ]
    daemon.wait_running("fast")
    assert _node_of(daemon, "fast") == "big-0"
    assert [reason for reason, _ in _scheduler_events(daemon, "fast")] == [
        "FailedScheduling",
        "Scheduled",
    ]
    # New pods use the new label too, through node affinity as well as a selector.
    term = {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["nvme"]}]}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }
    daemon.api("POST", "/api/v1/namespaces/default/pods", _pod("near", affinity=affinity))
    assert _node_of(daemon, "near") == "big-0"

    annotated = kubectl.run("annotate", "node", "big-0", "team=storage").stdout.strip()
    assert annotated == "node/big-0 annotated"
    tainted = kubectl.run("taint", "node", "big-0", "dedicated=db:NoSchedule").stdout.strip()
    assert tainted == "node/big-0 tainted"
    node = daemon.api("GET", "/api/v1/nodes/big-0")
    assert node["metadata"]["annotations"]["team"] == "storage"
    assert node["spec"]["taints"] == [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]
    # The taint keeps off a pod that does not tolerate it, until it is removed.
    daemon.api("POST", "/api/v1/namespaces/default/pods", _pod("big", nodeSelector={"size": "big"}))
    refused = (
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 2 node(s) "
        f"didn't match Pod's node affinity/selector. {PREEMPTION}"
    )
    assert _scheduler_events(daemon, "big") == [("FailedScheduling", refused)]
    assert (
        kubectl.run("taint", "node", "big-0", "dedicated-").stdout.strip() == "node/big-0 untainted"
    )
    daemon.wait_running("big")
    assert _node_of(daemon, "big") == "big-0"
    kubectl.run("annotate", "node", "big-0", "team-")
    kubectl.run("label", "node", "big-0", "disk-")
    labels = daemon.api("GET", "/api/v1/nodes/big-0")["metadata"]["labels"]
    assert "disk" not in labels
    assert labels["kubernetes.io/hostname"] == "big-0"


def test_node_updates_are_validated_as_the_apiserver_does(
    daemon: RunningDaemon, kubectl: Kubectl, core_api: client.CoreV1Api
) -> None:
    bad = kubectl.run("label", "node", "small-0", "bad key=x", check=False)
    assert bad.returncode == 1
    cidr = {"spec": {"podCIDRs": ["10.9.0.0/24"]}}
    with pytest.raises(client.ApiException) as refused:
        core_api.patch_node("small-0", cidr, _content_type=STRATEGIC)
    assert refused.value.status == 422
    assert json.loads(refused.value.body)["message"] == (
        'Node "small-0" is invalid: spec.podCIDRs: Forbidden: node updates may not change podCIDR '
        'except from "" to valid'
    )
    # A dry run answers with the cordoned node and changes nothing.
    dry = kubectl.run("cordon", "small-0", "--dry-run=server").stdout.strip()
    assert dry == "node/small-0 cordoned (server dry run)"
    assert _statuses(kubectl)["small-0"] == "Ready"


def test_a_deleted_node_registers_again(daemon: RunningDaemon, kubectl: Kubectl) -> None:
    daemon.api("POST", "/api/v1/namespaces/default/pods", _pod("stays", nodeName="small-1"))
    daemon.wait_running("stays")
    kubectl.run("label", "node", "small-1", "disk=ssd")
    kubectl.run("cordon", "small-1")
    before = daemon.api("GET", "/api/v1/nodes/small-1")
    assert kubectl.run("delete", "node", "small-1").stdout.strip() == 'node "small-1" deleted'
    after = daemon.api("GET", "/api/v1/nodes/small-1")
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["metadata"]["creationTimestamp"] >= before["metadata"]["creationTimestamp"]
    # Registered as its kubelet does: its pool's labels, schedulable, none of a client's edits.
    assert after["metadata"]["labels"]["size"] == "small"
    assert "disk" not in after["metadata"]["labels"]
    assert "unschedulable" not in after["spec"]
    assert daemon.pod("stays")["status"]["phase"] == "Running"  # its pods keep running
    gone = kubectl.run("delete", "node", "nope", check=False)
    assert 'nodes "nope" not found' in gone.stderr


def test_node_changes_survive_a_restart(daemon_factory: DaemonFactory, kubectl_bin: str) -> None:
    first = daemon_factory(_config())
    kubectl = Kubectl(kubectl_bin, first.base_url, first.state_dir.parent / "home-restart")
    kubectl.run("label", "node", "big-0", "disk=nvme")
    kubectl.run("cordon", "small-0")
    uid = first.api("GET", "/api/v1/nodes/big-0")["metadata"]["uid"]
    assert first.terminate() == 0
    second = daemon_factory(_config(), state_dir=first.state_dir)
    kubectl = kubectl.with_flags(server=second.base_url)
    node = second.api("GET", "/api/v1/nodes/big-0")
    assert (node["metadata"]["uid"], node["metadata"]["labels"]["disk"]) == (uid, "nvme")
    assert _statuses(kubectl)["small-0"] == "Ready,SchedulingDisabled"
    # The scheduler knows both after the restart: a small pod avoids the cordoned node.
    second.api("POST", "/api/v1/namespaces/default/pods", _pod("p", nodeSelector={"size": "small"}))
    assert _node_of(second, "p") == "small-1"


def test_kubectl_replace_of_a_secret(
    daemon: RunningDaemon, kubectl: Kubectl, tmp_path: Path
) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "stringData": {"user": "a"},
    }
    path = tmp_path / "creds.yaml"
    path.write_text(yaml.safe_dump(secret), encoding="utf-8")
    kubectl.run("create", "-f", str(path))
    secret["stringData"] = {"user": "b", "password": "c"}
    path.write_text(yaml.safe_dump(secret), encoding="utf-8")
    assert kubectl.run("replace", "-f", str(path)).stdout.strip() == "secret/creds replaced"
    listed = kubectl.run("get", "secret", "creds", "--no-headers").stdout.split()
    assert listed[:3] == ["creds", "Opaque", "2"]
    kubectl.run("delete", "secret", "creds")


def test_delete_collection_takes_what_the_selector_picks(
    daemon: RunningDaemon, kubectl: Kubectl, core_api: client.CoreV1Api
) -> None:
    for name in ("a1", "a2", "b1"):
        body = _pod(name)
        body["metadata"]["labels"] = {"app": name[0]}
        daemon.api("POST", "/api/v1/namespaces/default/pods", body)
        core_api.create_namespaced_secret(
            "default", {"metadata": {"name": name, "labels": {"app": name[0]}}}
        )
    core_api.delete_collection_namespaced_pod("default", label_selector="app=a")
    poll(lambda: set(daemon.pods()) == {"b1"}, timeout=15, what="only b1 left")
    _, answer = daemon.request(
        "DELETE", "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name%3Da2"
    )
    assert answer["kind"] == "SecretList"
    assert [s["metadata"]["name"] for s in answer["items"]] == ["a2"]
    assert answer["items"][0].get("data") in (None, {})  # values never shown
    left = kubectl.run("get", "secrets", "-o", "name").stdout.split()
    assert {"secret/a1", "secret/b1"} <= set(left)
    assert "secret/a2" not in left
    kubectl.run("delete", "secrets", "-l", "app")
    # kubectl's own `delete --all` deletes one by one, and works too.
    kubectl.run("delete", "pods", "--all", "--wait=false")
    poll(lambda: not daemon.pods(), timeout=15, what="no pods left")


def test_kube_node_lease_can_be_deleted_and_comes_back(
    kubectl: Kubectl, daemon: RunningDaemon
) -> None:
    before = daemon.api("GET", "/api/v1/namespaces/kube-node-lease")["metadata"]["uid"]
    deleted = kubectl.run("delete", "namespace", "kube-node-lease").stdout.strip()
    assert deleted == 'namespace "kube-node-lease" deleted'

    def recreated() -> dict[str, Any] | None:
        status, doc = daemon.request("GET", "/api/v1/namespaces/kube-node-lease")
        return doc if status == 200 else None

    again = poll(
        recreated,
        timeout=15,
        what="kube-node-lease created again",
    )
    assert again["metadata"]["uid"] != before
    refused = kubectl.run("delete", "namespace", "kube-public", check=False)
    assert refused.returncode == 1
    assert (
        'Error from server (Forbidden): namespaces "kube-public" is forbidden: this namespace '
        "may not be deleted"
    ) in refused.stderr


def test_a_bad_quantity_in_a_deployment_is_refused_at_its_create(
    daemon: RunningDaemon, kubectl: Kubectl, tmp_path: Path
) -> None:
    container = {"name": "app", "image": IMAGE, "resources": {"requests": {"cpu": "lots"}}}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "greedy"},
        "spec": {
            "selector": {"matchLabels": {"app": "greedy"}},
            "template": {
                "metadata": {"labels": {"app": "greedy"}},
                "spec": {"containers": [container]},
            },
        },
    }
    path = tmp_path / "greedy.yaml"
    path.write_text(yaml.safe_dump(deployment), encoding="utf-8")
    refused = kubectl.run("create", "-f", str(path), check=False)
    assert refused.returncode == 1
    assert (
        'Error from server (BadRequest): error when creating "' + str(path) + '": Deployment in '
        'version "v1" cannot be handled as a Deployment: quantities must match the regular '
        "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    ) in refused.stderr
    container["resources"] = {"limits": {"memory": "-1Mi"}}
    path.write_text(yaml.safe_dump(deployment), encoding="utf-8")
    invalid = kubectl.run("create", "-f", str(path), check=False)
    assert (
        'The Deployment "greedy" is invalid: spec.template.spec.containers[0].resources.'
        'limits[memory]: Invalid value: "-1Mi": must be greater than or equal to 0'
    ) in invalid.stderr
    assert "greedy" not in kubectl.run("get", "deployments", "-o", "name").stdout


def test_kubectl_drain_evicts_and_its_controller_replaces_the_pods_elsewhere(
    daemon: RunningDaemon, kubectl: Kubectl
) -> None:
    kubectl.run("create", "deployment", "web", f"--image={IMAGE}", "--replicas=3")
    try:

        def placed() -> dict[str, str] | None:
            pods = daemon.pods()
            running = [p for p in pods.values() if p["status"]["phase"] == "Running"]
            if len(pods) != 3 or len(running) != 3:
                return None
            return {name: p["spec"]["nodeName"] for name, p in pods.items()}

        before = poll(placed, timeout=30, what="3 web pods running")
        assert set(before.values()) == set(NODES)  # spread, one a node
        victim = next(name for name, node in before.items() if node == "small-0")
        drained = kubectl.run("drain", "small-0", "--ignore-daemonsets").stdout
        assert "node/small-0 cordoned" in drained
        assert f"pod/{victim} evicted" in drained
        assert "node/small-0 drained" in drained
        after = poll(
            lambda: (p := placed()) and victim not in p and p, timeout=30, what="a replacement"
        )
        assert "small-0" not in after.values()
        # Without the eviction API kubectl deletes the pods itself (a protobuf DeleteOptions).
        victim = next(name for name, node in after.items() if node == "big-0")
        deleted = kubectl.run("drain", "big-0", "--disable-eviction", "--grace-period=0").stdout
        assert f"pod/{victim} deleted" in deleted
        assert victim not in daemon.pods()
    finally:
        kubectl.run("delete", "deployment", "web")
        # Its ReplicaSet goes in the background: gone before the next test counts pods.
        rs_path = "/apis/apps/v1/namespaces/default/replicasets"
        poll(lambda: not daemon.api("GET", rs_path)["items"], timeout=30, what="no ReplicaSet")
