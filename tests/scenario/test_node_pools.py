"""Node pools in scenario files (`nodePools`) and where pods go: `spec.nodeName`, a
`nodeSelector` on the pools' labels, or spread evenly; a pod no node takes stays Pending with
the scheduler's FailedScheduling text. Everything here runs in virtual time, so the times are
the model's arithmetic, exactly."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from simkit import image, pod, scenario, seconds

from kubesim_images.errors import ConfigError
from kubesim_images.placement import Placer, Unschedulable, failed_scheduling
from kubesim_images.scenario.model import load_document
from kubesim_images.scenario.report import to_json
from kubesim_images.scenario.runner import VariantResult, run_scenario

APP = "example.com/app:v1"
BASE = "example.com/base:v1"
OTHER = "example.com/other:v1"


def _pools() -> list[dict[str, Any]]:
    return [
        {"name": "fast", "count": 2, "bandwidth": "8Mi", "labels": {"pool": "fast"}},
        {
            "name": "slow",
            "count": 1,
            "bandwidth": "2Mi",
            "labels": {"pool": "slow", "disk": "ssd"},
            "preloadedImages": [BASE],
            "kubelet": {"serializeImagePulls": False},
        },
    ]


def _spec(*workload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "duration": "10m",
        "nodePools": _pools(),
        "registry": {"latency": "0s", "images": [image(APP, 4), image(BASE, 1), image(OTHER, 4)]},
        "workload": list(workload),
        **extra,
    }


def _entry(name: str, replicas: int = 1, ref: str = APP, **spec: Any) -> dict[str, Any]:
    manifest = pod(name, ref)
    manifest["spec"].update(spec)
    return {"replicas": replicas, "pod": manifest}


def _run(spec: dict[str, Any]) -> tuple[VariantResult, dict[str, Any]]:
    """The variant's result, and its JSON as `-o json` prints it."""
    result = run_scenario(load_document(scenario(spec)))
    return result.variants[0], to_json(result)["variants"][0]


def _placed(spec: dict[str, Any]) -> dict[str, str | None]:
    return {p["name"]: p["node"] for p in _run(spec)[1]["pods"]}


class TestPools:
    """Each pool's nodes have its downlink, preloaded images and kubelet settings."""

    def test_nodes_are_named_after_their_pool_and_spread_evenly(self) -> None:
        result, _ = _run(_spec(_entry("web", 6)))
        assert [n.name for n in result.nodes] == ["fast-0", "fast-1", "slow-0"]
        assert _placed(_spec(_entry("web", 6))) == {
            "web-0": "fast-0",
            "web-1": "fast-1",
            "web-2": "slow-0",
            "web-3": "fast-0",
            "web-4": "fast-1",
            "web-5": "slow-0",
        }

    def test_each_pool_has_its_own_downlink_and_kubelet(self) -> None:
        """Two 4 MiB images. On a fast node (8 MiB/s, serial pulls, the file's kubelet) the
        second waits for the first: 0.5 s and 1.0 s. On slow-0 (2 MiB/s, its pool pulls in
        parallel) both flows share the link, 1 MiB/s each: both at 4.0 s."""
        spec = _spec(
            _entry("a", nodeName="fast-0"),
            _entry("b", nodeName="fast-0", ref=OTHER),
            _entry("c", nodeName="slow-0"),
            _entry("d", nodeName="slow-0", ref=OTHER),
        )
        result, _ = _run(spec)
        ready = {
            s.pod.name: seconds(s.images_ready_at - s.created_at)
            for s in result.pods
            if s.images_ready_at is not None
        }
        assert ready == {"a-0": 0.5, "b-0": 1.0, "c-0": 4.0, "d-0": 4.0}

    def test_a_pools_preloaded_images_are_on_its_nodes_only(self) -> None:
        spec = _spec()
        spec["workload"] = [
            {"pod": {**pod("on-slow", BASE), "spec": {**pod("x", BASE)["spec"], "nodeName": "slow-0"}}},
            {"pod": {**pod("on-fast", BASE), "spec": {**pod("x", BASE)["spec"], "nodeName": "fast-0"}}},
        ]  # fmt: skip
        result, _ = _run(spec)
        by_pod = {s.pod.name: s for s in result.pods}
        assert by_pod["on-slow-0"].statuses[0].pull_attempts == 0  # already present
        assert by_pod["on-fast-0"].statuses[0].pull_attempts == 1

    def test_a_pools_kubelet_is_merged_over_the_files(self) -> None:
        variant = load_document(
            scenario(_spec(kubelet={"registryPullQPS": 3, "registryBurst": 7}))
        ).variants[0]
        fast, slow = variant.pools
        assert fast.kubelet.registry_pull_qps == slow.kubelet.registry_pull_qps == 3
        assert slow.kubelet.registry_burst == 7
        assert fast.kubelet.pull_concurrency == 1
        assert slow.kubelet.pull_concurrency is None


class TestPlacement:
    def test_a_node_selector_picks_among_matching_nodes_evenly(self) -> None:
        assert _placed(_spec(_entry("web", 4, nodeSelector={"pool": "fast"}))) == {
            "web-0": "fast-0",
            "web-1": "fast-1",
            "web-2": "fast-0",
            "web-3": "fast-1",
        }

    def test_every_selector_pair_must_match(self) -> None:
        spec = _spec(_entry("db", 2, nodeSelector={"pool": "slow", "disk": "ssd"}))
        assert set(_placed(spec).values()) == {"slow-0"}

    def test_a_pod_no_node_takes_stays_pending_with_the_schedulers_text(self) -> None:
        _, document = _run(_spec(_entry("gpu", 1, nodeSelector={"gpu": "yes"}), _entry("web")))
        gpu = next(p for p in document["pods"] if p["name"] == "gpu-0")
        assert gpu["node"] is None
        assert gpu["imagesReadyAt"] is None
        [event] = [e for e in document["events"] if e["pod"] == "gpu-0"]
        assert event == {
            "t": 0.0,
            "node": None,
            "namespace": "default",
            "pod": "gpu-0",
            "type": "Warning",
            "reason": "FailedScheduling",
            "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node "
            "affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not "
            "helpful for scheduling.",
        }
        summary = document["summary"]
        assert (summary["pods"], summary["podsReady"]) == (2, 1)
        assert summary["imagesReady"]["max"] is None  # the pending pod ranks last
        assert summary["simulatedSeconds"] == 600.0  # it never settles: the cap ends the run
        # The pod that could be placed was not counted against a node by the one that could not.
        assert next(p for p in document["pods"] if p["name"] == "web-0")["node"] == "fast-0"

    def test_a_node_name_no_node_has_leaves_the_pod_pending_without_an_event(self) -> None:
        _, document = _run(_spec(_entry("lost", 1, nodeName="nowhere")))
        assert document["pods"][0]["node"] is None
        assert document["events"] == []

    def test_one_pool_files_keep_their_node_names_and_round_robin(self) -> None:
        doc = {
            "nodes": {"count": 3},
            "registry": {"images": [image(APP, 1)]},
            "workload": [{"replicas": 4, "pod": pod("web", APP)}],
        }
        result = run_scenario(load_document(scenario(doc)))
        assert [p.node for p in result.variants[0].pods] == [
            "node-0",
            "node-1",
            "node-2",
            "node-0",
        ]


class TestPlacer:
    def test_spreads_evenly_and_refills_the_emptiest_node_first(self) -> None:
        placer = Placer([("a", {}), ("b", {}), ("c", {})])
        assert [placer.place(None, {}) for _ in range(4)] == ["a", "b", "c", "a"]
        placer.release("b")
        placer.release("a")
        assert placer.place(None, {}) == "b"  # the only node holding none
        assert [placer.pods_on(n) for n in "abc"] == [1, 1, 1]

    def test_churn_keeps_its_bookkeeping_bounded(self) -> None:
        placer = Placer([(f"n{i}", {}) for i in range(3)])
        for _ in range(10_000):
            node = placer.place(None, {})
            assert isinstance(node, str)
            placer.release(node)
        assert sum(map(len, placer._levels.values())) <= 2 * 3 + 64  # the bound is the point
        assert [placer.pods_on(f"n{i}") for i in range(3)] == [0, 0, 0]

    @given(
        nodes=st.integers(1, 12),
        steps=st.lists(st.one_of(st.none(), st.integers(0, 11)), max_size=300),
    )
    def test_always_the_least_loaded_node_the_first_on_ties(
        self, nodes: int, steps: list[int | None]
    ) -> None:
        """Against the rule itself: a place (None) takes min (pods, index) over all nodes; a
        number releases a pod from that node when it has one."""
        names = [f"n{i}" for i in range(nodes)]
        placer = Placer([(name, {}) for name in names])
        pods = [0] * nodes
        for step in steps:
            if step is None:
                expected = min(range(nodes), key=lambda i: (pods[i], i))
                assert placer.place(None, {}) == names[expected]
                pods[expected] += 1
            elif step < nodes and pods[step]:
                placer.release(names[step])
                pods[step] -= 1
            assert [placer.pods_on(name) for name in names] == pods

    def test_no_nodes_at_all(self) -> None:
        assert Placer([]).place(None, {}) == Unschedulable(failed_scheduling(0, 0))


class TestPoolFields:
    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            (
                {"nodes": {"count": 1}, "nodePools": [{"name": "a"}]},
                "f.yaml: spec.nodePools: give spec.nodes (one pool) or spec.nodePools, not both",
            ),
            ({"nodePools": []}, "f.yaml: spec.nodePools: at least one pool"),
            ({"nodePools": [{"count": 2}]}, "f.yaml: spec.nodePools[0].name: required"),
            (
                {"nodePools": [{"name": "a"}, {"name": "a"}]},
                "f.yaml: spec.nodePools[1].name: duplicate pool name 'a'",
            ),
            ({"nodePools": [{"name": "A_b"}]}, "f.yaml: spec.nodePools[0].name: must be a DNS"),
            (
                {"nodePools": [{"name": "a", "labels": {"k": "not a value"}}]},
                "f.yaml: spec.nodePools[0].labels.k: must be a label value",
            ),
            (
                {"nodePools": [{"name": "a", "platform": "linux/arm64"}]},
                "f.yaml: spec.nodePools[0].platform: only with registry type oci",
            ),
            (
                {"nodePools": [{"name": "a", "kubelet": {"maxParallelImagePulls": 0}}]},
                (
                    "f.yaml: spec.nodePools[0].kubelet: invalid configuration: "
                    "maxParallelImagePulls 0 must be a positive number"
                ),
            ),
            (
                {"nodePools": [{"name": "a", "preloadedImages": ["nope:v1"]}]},
                (
                    "f.yaml: spec.nodePools[0].preloadedImages[0]: 'nope:v1' is not in the "
                    "registry's catalogue (spec.registry.images)"
                ),
            ),
            (
                {"nodePools": [{"name": "a", "count": 600_000}, {"name": "b", "count": 600_000}]},
                "f.yaml: spec.nodePools: at most 1,000,000 nodes in all, got 1,200,000",
            ),
        ],
    )
    def test_bad_pools_are_refused_with_the_field(
        self, spec: dict[str, Any], expected: str
    ) -> None:
        doc = scenario({"registry": {"images": [image(APP, 1)]}, "workload": [], **spec})
        with pytest.raises(ConfigError) as caught:
            load_document(doc, source="f.yaml")
        assert str(caught.value).startswith(expected)
