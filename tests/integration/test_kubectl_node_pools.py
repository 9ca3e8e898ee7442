"""One daemon, several simulated nodes (`nodePools`), driven by the real kubectl: `get nodes`
lists them all, `describe node` shows each, pods land by `spec.nodeName`, a `nodeSelector` or
spread evenly, `get pods -o wide` shows NODE, and a pod no node takes stays Pending with the
scheduler's FailedScheduling event. Each node has its own store: a pod on one node pulls an
image another node already has. A restart finds every pod on its node again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import DaemonFactory, Kubectl, fast_config, poll

pytestmark = pytest.mark.integration

IMAGE = "busybox:1.36"
UNSCHEDULABLE = (
    "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: "
    "0/3 nodes are available: 3 Preemption is not helpful for scheduling."
)


def _config() -> dict[str, Any]:
    config = fast_config(
        nodePools=[
            {"name": "small", "count": 2, "bandwidth": "100Mi", "labels": {"size": "small"}},
            {
                "name": "big",
                "count": 1,
                "bandwidth": "1Gi",
                "labels": {"size": "big"},
                "preloadedImages": ["registry.k8s.io/pause:3.10", IMAGE],
                "kubelet": {"serializeImagePulls": True, "maxParallelImagePulls": 1},
            },
        ]
    )
    del config["node"]
    return config


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": IMAGE}], **spec},
    }


def _wide(kubectl: Kubectl) -> dict[str, list[str]]:
    """`kubectl get pods -o wide`: NAME -> its cells (NODE is the seventh)."""
    lines = kubectl.run("get", "pods", "-o", "wide").stdout.splitlines()
    header = lines[0].split()
    assert header[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"], header
    return {cells[0]: cells for cells in (line.split() for line in lines[1:])}


def test_nodes_pools_placement_and_an_unschedulable_pod(
    daemon_factory: DaemonFactory, kubectl_bin: str, tmp_path: Path
) -> None:
    daemon = daemon_factory(_config())
    kubectl = Kubectl(kubectl_bin, daemon.base_url, tmp_path / "home")

    nodes = kubectl.run("get", "nodes", "--no-headers").stdout.splitlines()
    assert [line.split()[:2] for line in nodes] == [
        ["small-0", "Ready"],
        ["small-1", "Ready"],
        ["big-0", "Ready"],
    ]
    labelled = kubectl.run("get", "nodes", "-l", "size=small", "-o", "name").stdout.split()
    assert labelled == ["node/small-0", "node/small-1"]
    described = kubectl.run("describe", "node", "big-0").stdout
    assert "size=big" in described
    assert "kubernetes.io/hostname=big-0" in described

    for doc in (
        _pod("pinned", nodeName="small-1"),
        _pod("picky", nodeSelector={"size": "big"}),
        _pod("spread-a"),
        _pod("spread-b"),
        _pod("nowhere", nodeSelector={"gpu": "yes"}),
    ):
        daemon.api("POST", "/api/v1/namespaces/default/pods", doc)

    def placed() -> dict[str, list[str]] | None:
        rows = _wide(kubectl)
        running = [n for n in rows if n != "nowhere" and rows[n][2] == "Running"]
        return rows if len(running) == 4 else None

    rows = poll(placed, timeout=20, what="four pods Running")
    assert {name: cells[6] for name, cells in rows.items()} == {
        "pinned": "small-1",
        "picky": "big-0",
        # The fewest pods first, the first listed among equals: small-0 holds none yet, then
        # small-0 and big-0 hold one each as small-1 does.
        "spread-a": "small-0",
        "spread-b": "small-0",
        "nowhere": "<none>",
    }
    assert rows["nowhere"][2] == "Pending"

    # Each node its own store: the big pool had the image preloaded, the small nodes pulled it.
    events = kubectl.run(
        "get", "events", "--field-selector", "involvedObject.name=picky", "-o", "json"
    ).stdout
    assert "already present on machine" in events
    pinned = kubectl.run("describe", "pod", "pinned").stdout
    assert "Successfully pulled image" in pinned

    pending = kubectl.run("describe", "pod", "nowhere").stdout
    assert "FailedScheduling" in pending
    assert "default-scheduler" in pending
    assert UNSCHEDULABLE in " ".join(pending.split())
    doc = daemon.pod("nowhere")
    assert doc["status"]["phase"] == "Pending"
    assert doc["status"]["conditions"] == [
        {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": doc["metadata"]["creationTimestamp"],
            "reason": "Unschedulable",
            "message": UNSCHEDULABLE,
        }
    ]
    big = daemon.api("GET", "/api/v1/nodes/big-0")
    small = daemon.api("GET", "/api/v1/nodes/small-0")
    assert big["metadata"]["labels"]["size"] == "big"
    # small-0 pulled busybox for its own pods; big-0 had it from the start.
    assert any("busybox" in " ".join(i["names"]) for i in small["status"]["images"])

    # /debug shows the first node, or the one asked for.
    assert daemon.api("GET", "/debug/pulls")["node"] == "small-0"
    assert daemon.api("GET", "/debug/gc?node=big-0")["node"] == "big-0"
    status, body = daemon.request("GET", "/debug/pulls?node=nope")
    assert (status, body["reason"]) == (404, "NotFound")

    # A restart finds each pod on its node, and the pending one still pending.
    assert daemon.terminate() == 0
    again = daemon_factory(_config(), state_dir=daemon.state_dir)
    kubectl = Kubectl(kubectl_bin, again.base_url, tmp_path / "home")
    rows = poll(placed, timeout=20, what="four pods Running after the restart")
    assert {name: cells[6] for name, cells in rows.items()}["pinned"] == "small-1"
    assert rows["nowhere"][6] == "<none>"


def test_required_node_affinity_places_the_pod_or_leaves_it_pending(
    daemon_factory: DaemonFactory, kubectl_bin: str, tmp_path: Path
) -> None:
    daemon = daemon_factory(_config())
    kubectl = Kubectl(kubectl_bin, daemon.base_url, tmp_path / "home")

    def affinity(*expressions: dict[str, Any]) -> dict[str, Any]:
        terms = [{"matchExpressions": list(expressions)}]
        return {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
            }
        }

    manifest = tmp_path / "pods.yaml"
    docs = [
        _pod("big-only", affinity=affinity({"key": "size", "operator": "In", "values": ["big"]})),
        _pod("no-big", affinity=affinity({"key": "size", "operator": "NotIn", "values": ["big"]})),
        _pod("gpu", affinity=affinity({"key": "gpu", "operator": "Exists"})),
    ]
    manifest.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    kubectl.run("create", "-f", str(manifest))

    def placed() -> dict[str, list[str]] | None:
        rows = _wide(kubectl)
        running = [n for n in rows if rows[n][2] == "Running"]
        return rows if len(running) == 2 else None

    rows = poll(placed, timeout=20, what="two pods Running")
    assert {name: cells[6] for name, cells in rows.items()} == {
        "big-only": "big-0",
        "no-big": "small-0",
        "gpu": "<none>",
    }
    pending = kubectl.run("describe", "pod", "gpu").stdout
    assert "FailedScheduling" in pending
    assert UNSCHEDULABLE in " ".join(pending.split())
