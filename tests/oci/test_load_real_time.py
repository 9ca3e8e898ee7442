"""Load against the real registry: 50 simulated nodes in one process pulling for real, each
with its own queue, QPS bucket, back-off and content store (the model beside a real run is
tests/oci/test_compare.py).

Every node gets the same two pods at 0 s: a one-layer image of a few hundred bytes, then a
two-layer 2 MiB one, with `registryPullQPS: 1`, `registryBurst: 1`, in two variants. Serial
pulls: on every node the second pull waits for the first and then meets the QPS bucket,
refused if the first took under a second (then backed off 10 s), admitted otherwise; which
branch a node takes depends on the machine's speed, so each node is checked against the
branch it took. Parallel pulls: both meet the node's bucket in the same sweep of syncs, so the
second is refused on every node, backs off and goes through. Each run must have served
exactly the requests and bytes of 100 verified pulls (`store: discard` keeps none of it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ocikit import Seeded

from kubesim_images.scenario.model import load_document
from kubesim_images.scenario.report import to_json
from kubesim_images.scenario.runner import run_scenario
from kubesim_images.units import parse_duration

pytestmark = pytest.mark.integration

NODES = 50


def _manifest(seeded: Seeded, name: str) -> dict[str, Any]:
    digest = seeded.images[name]["digest"].removeprefix("sha256:")
    doc: dict[str, Any] = json.loads((seeded.layout.root / "blobs/sha256" / digest).read_bytes())
    return doc


def _blob_bytes(manifest: dict[str, Any]) -> int:
    return int(manifest["config"]["size"]) + sum(int(x["size"]) for x in manifest["layers"])


def _durations(pulled: str) -> tuple[float, float]:
    """(pull, including waiting) seconds from a `Pulled` message."""
    match = re.search(r" in (\S+) \((\S+) including waiting\)", pulled)
    assert match is not None, pulled
    return parse_duration(match[1]), parse_duration(match[2])


def _pod(name: str, image: str, replicas: int) -> dict[str, Any]:
    return {
        "at": "0s",
        "replicas": replicas,
        "pod": {
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": image}]},
        },
    }


def test_fifty_nodes_pull_for_real_with_per_node_queue_qps_and_backoff(
    seeded: Seeded, tmp_path: Path
) -> None:
    host = seeded.open.host
    tiny, big = f"{host}/demo/tiny:v1", f"{host}/demo/big:v1"
    doc = {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "Scenario",
        "metadata": {"name": "fifty-nodes"},
        "spec": {
            "duration": "120s",
            "nodes": {"count": NODES, "bandwidth": "64Mi"},
            "registry": {"type": "oci", "platform": "linux/amd64", "store": "discard"},
            "kubelet": {"serializeImagePulls": True, "registryPullQPS": 1, "registryBurst": 1},
            "sync": {"errorRequeue": "1s", "jitterFactor": 0},
            # Round-robin: first-i (tiny) and then second-i (big) both land on node-i.
            "workload": [_pod("first", tiny, NODES), _pod("second", big, NODES)],
            "variants": [
                {"name": "serial"},
                {"name": "parallel", "kubelet": {"serializeImagePulls": False}},
            ],
        },
    }
    scenario = load_document(doc, source="fifty-nodes.yaml")
    result = run_scenario(scenario, real_time=True, workdir=tmp_path / "stores")
    serial, parallel = to_json(result)["variants"]
    per_node = _blob_bytes(_manifest(seeded, "big")) + _blob_bytes(_manifest(seeded, "tiny"))
    requests_per_node = (2 + len(_manifest(seeded, "big")["layers"])) + (
        2 + len(_manifest(seeded, "tiny")["layers"])
    )
    for variant in (serial, parallel):
        summary = variant["summary"]
        assert summary["pods"] == summary["podsReady"] == 2 * NODES, summary
        # The registry saw 100 verified pulls: manifest, config and layers of each, all 200.
        assert summary["bytesPulled"] == NODES * per_node
        registry = summary["registry"]
        assert registry["bytes"] == NODES * per_node
        assert registry["statusCodes"] == {"200": NODES * requests_per_node}
        assert registry["requests"] == NODES * requests_per_node
        assert registry["retries"] == 0
        # store: discard verified and counted every blob and kept none of them.
        for i in range(NODES):
            root = tmp_path / "stores" / variant["name"] / f"node-{i}"
            assert list((root / "blobs" / "sha256").iterdir()) == []
            assert list((root / "ingest").iterdir()) == []

    # Serial: whichever way the QPS bucket went on a node (which depends on how fast its first
    # pull was), the second pull met it only once the first had ended.
    for i, first, second in _per_node(serial):
        first_pull = _durations(first[1]["message"])[0]
        refused = [e for e in second if e["message"].endswith("pull QPS exceeded")]
        if refused:
            [failure] = refused  # a token is back long before the 10 s back-off ends
            assert failure["t"] >= first[1]["t"]
            assert first_pull < 1  # under a second after the first took the only token
            _backed_off(second, failure, serial, i)
        else:
            assert [e["reason"] for e in second] == ["Pulling", "Pulled"]
            # Waited for all of the first pull: ended after it, and its time "including
            # waiting" (truncated to the ms) covers its own Pulling to the first's end. Not
            # `>= first_pull`: on a loaded machine its Pulling may come well after the first
            # pull started.
            assert second[1]["t"] >= first[1]["t"]
            assert _durations(second[1]["message"])[1] >= first[1]["t"] - second[0]["t"] - 0.001
    refusals = sum(1 for e in serial["events"] if e["message"].endswith("pull QPS exceeded"))
    assert serial["summary"]["pulls"] == 2 * NODES + refusals
    assert serial["summary"]["failedPulls"] == refusals

    # Parallel: both pulls of a node meet its bucket in the same sweep of syncs at 0 s, so the
    # second is refused on every node (its own bucket: a shared one would admit only one pull
    # in all), backs off 10 s and then goes through.
    for i, _first, second in _per_node(parallel):
        [failure] = [e for e in second if e["message"].endswith("pull QPS exceeded")]
        _backed_off(second, failure, parallel, i)
    assert parallel["summary"]["pulls"] == 3 * NODES
    assert parallel["summary"]["failedPulls"] == NODES


def _per_node(variant: dict[str, Any]) -> Iterator[tuple[int, list[Any], list[Any]]]:
    """(node index, first pod's events, second pod's events), with what holds on every node."""
    by_pod: dict[str, list[dict[str, Any]]] = {}
    for event in variant["events"]:
        by_pod.setdefault(event["pod"], []).append(event)
    pods = {p["name"]: p for p in variant["pods"]}
    for i in range(NODES):
        first, second = by_pod[f"first-{i}"], by_pod[f"second-{i}"]
        assert pods[f"first-{i}"]["node"] == pods[f"second-{i}"]["node"] == f"node-{i}"
        assert {e["node"] for e in first + second} == {f"node-{i}"}
        assert [e["reason"] for e in first] == ["Pulling", "Pulled"]
        assert pods[f"first-{i}"]["containers"][0]["pullAttempts"] == 1
        assert second[-1]["reason"] == "Pulled"
        yield i, first, second


def _backed_off(
    events: list[dict[str, Any]], failure: dict[str, Any], variant: dict[str, Any], i: int
) -> None:
    assert "BackOff" in [e["reason"] for e in events]
    pulling = [e["t"] for e in events if e["reason"] == "Pulling"]
    assert len(pulling) == 2
    [pod] = [p for p in variant["pods"] if p["name"] == f"second-{i}"]
    assert pod["containers"][0]["pullAttempts"] == 2
    # Back-off: no new attempt within 10 s of the failure (the kubelet's initial delay).
    assert pulling[1] >= failure["t"] + 10
