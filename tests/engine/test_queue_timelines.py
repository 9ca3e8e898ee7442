"""The pull queue on shared bandwidth: exact simulated timelines (SPEC sections 3 and 5)."""

from __future__ import annotations

import pytest
from simkit import MI, events, image, pod, ready_at, simulate

A, B, C = "example.com/a:v1", "example.com/b:v1", "example.com/c:v1"


def _three_pods(
    kubelet: dict[str, object], sizes: tuple[float, float, float]
) -> dict[str, float | None]:
    result = simulate(
        {
            "kubelet": {"registryPullQPS": 0, **kubelet},
            "nodes": {"bandwidth": "100Mi"},
            "registry": {"images": [image(A, sizes[0]), image(B, sizes[1]), image(C, sizes[2])]},
            "workload": [{"pod": pod("a", A)}, {"pod": pod("b", B)}, {"pod": pod("c", C)}],
        }
    )
    return ready_at(result)


class TestSerialVersusParallel:
    """One slot, N slots and no limit, on one 100 MiB/s downlink."""

    def test_serial_pulls_one_after_another_in_arrival_order(self):
        assert _three_pods({"serializeImagePulls": True}, (100, 100, 100)) == {
            "a-0": 1.0,
            "b-0": 2.0,
            "c-0": 3.0,
        }

    def test_unlimited_parallel_shares_the_downlink_fairly(self):
        assert _three_pods({"serializeImagePulls": False}, (100, 100, 100)) == {
            "a-0": 3.0,
            "b-0": 3.0,
            "c-0": 3.0,
        }

    def test_bounded_parallel_runs_two_then_the_third(self):
        assert _three_pods(
            {"serializeImagePulls": False, "maxParallelImagePulls": 2}, (100, 100, 100)
        ) == {"a-0": 2.0, "b-0": 2.0, "c-0": 3.0}

    def test_survivor_speeds_up_when_a_flow_ends(self):
        # 100 MiB and 300 MiB share 100 MiB/s: the small one ends at 2 s, the big one has
        # 200 MiB left and the whole link: 4 s. Serial gives the same end, a sooner start.
        parallel = _three_pods({"serializeImagePulls": False}, (100, 300, 0.0))
        serial = _three_pods({"serializeImagePulls": True}, (100, 300, 0.0))
        assert parallel == {"a-0": 2.0, "b-0": 4.0, "c-0": 0.0}
        assert serial == {"a-0": 1.0, "b-0": 4.0, "c-0": 4.0}

    def test_registry_egress_is_shared_across_nodes(self):
        result = simulate(
            {
                "nodes": {"count": 2, "bandwidth": "100Mi"},
                "registry": {"bandwidth": "100Mi", "images": [image(A, 100)]},
                "workload": [{"replicas": 2, "pod": pod("a", A)}],
            }
        )
        assert ready_at(result) == {"a-0": 2.0, "a-1": 2.0}
        assert {p.node for p in result.pods} == {"node-0", "node-1"}

    def test_latency_is_one_round_trip_before_the_download(self):
        result = simulate(
            {
                "kubelet": {"serializeImagePulls": True, "registryPullQPS": 0},
                "nodes": {"bandwidth": "100Mi"},
                "registry": {"latency": "250ms", "images": [image(A, 100), image(B, 50)]},
                "workload": [{"pod": pod("a", A)}, {"pod": pod("b", B)}],
            }
        )
        assert ready_at(result) == {"a-0": 1.25, "b-0": 2.0}

    def test_pulled_event_reports_pull_time_and_time_including_waiting(self):
        result = simulate(
            {
                "kubelet": {"serializeImagePulls": True, "registryPullQPS": 0},
                "nodes": {"bandwidth": "100Mi"},
                "registry": {"images": [image(A, 100), image(B, 150)]},
                "workload": [{"pod": pod("a", A)}, {"pod": pod("b", B)}],
            }
        )
        assert events(result, "b-0", "Pulled") == [
            (
                2.5,
                "Pulled",
                (
                    f'Successfully pulled image "{B}" in 1.5s (2.5s including waiting). '
                    f"Image size: {150 * MI} bytes."
                ),
            )
        ]


class TestLayers:
    """Layers are shared by digest: a node never downloads a layer it has or is fetching."""

    SHARED = "sha256:" + "ab" * 32

    def test_shared_layer_is_not_downloaded_twice(self):
        result = simulate(
            {
                "nodes": {"bandwidth": "100Mi"},
                "registry": {
                    "images": [
                        image(A, 100, 50, digests={0: self.SHARED}),
                        image(B, 100, 30, digests={0: self.SHARED}),
                    ]
                },
                "workload": [{"pod": pod("p", A, B)}],
            }
        )
        assert ready_at(result) == {"p-0": 1.8}
        assert result.bytes_pulled == 180 * MI

    def test_concurrent_pulls_on_one_node_wait_for_a_layer_in_flight(self):
        result = simulate(
            {
                "kubelet": {"serializeImagePulls": False, "registryPullQPS": 0},
                "nodes": {"bandwidth": "100Mi"},
                "registry": {"images": [image(A, 100)]},
                "workload": [{"replicas": 3, "pod": pod("p", A)}],
            }
        )
        assert ready_at(result) == {"p-0": 1.0, "p-1": 1.0, "p-2": 1.0}
        assert result.bytes_pulled == 100 * MI
        assert len(events(result, reason="Pulling")) == 3

    def test_preloaded_image_layers_are_not_downloaded(self):
        result = simulate(
            {
                "nodes": {"bandwidth": "100Mi", "preloadedImages": ["example.com/base:v1"]},
                "registry": {
                    "images": [
                        image("example.com/base:v1", 100, digests={0: self.SHARED}),
                        image(A, 100, 10, digests={0: self.SHARED}),
                    ]
                },
                "workload": [{"pod": pod("p", A)}],
            }
        )
        assert ready_at(result) == {"p-0": 0.1}


class TestOnePod:
    """The images of one pod are never pulled in parallel."""

    def test_two_containers_are_pulled_one_after_the_other(self):
        result = simulate(
            {
                "kubelet": {"serializeImagePulls": False, "registryPullQPS": 0},
                "nodes": {"bandwidth": "100Mi"},
                "registry": {"images": [image(A, 100), image(B, 100)]},
                "workload": [{"pod": pod("p", A, B)}],
            }
        )
        assert [(t, r) for t, r, _ in events(result, "p-0")] == [
            (0.0, "Pulling"),
            (1.0, "Pulled"),
            (1.0, "Pulling"),
            (2.0, "Pulled"),
        ]

    def test_init_containers_come_first_and_in_order(self):
        result = simulate(
            {
                "kubelet": {"serializeImagePulls": False, "registryPullQPS": 0},
                "nodes": {"bandwidth": "100Mi"},
                "registry": {"images": [image(A, 100), image(B, 100), image(C, 100)]},
                "workload": [{"pod": pod("p", C, init=(A, B))}],
            }
        )
        pulling = [(t, m) for t, _, m in events(result, "p-0", "Pulling")]
        assert pulling == [
            (0.0, f'Pulling image "{A}"'),
            (1.0, f'Pulling image "{B}"'),
            (2.0, f'Pulling image "{C}"'),
        ]
        status = result.pods[0]
        assert [cs.reason for cs in status.init_statuses] == ["Completed", "Completed"]

    def test_a_failing_init_container_blocks_the_app_containers(self):
        result = simulate(
            {
                "duration": "15s",
                "registry": {"images": [image(B, 1)]},
                "workload": [{"pod": pod("p", B, init=("example.com/missing:v1",))}],
            }
        )
        assert events(result, "p-0", "Pulling") == [
            (0.0, "Pulling", 'Pulling image "example.com/missing:v1"'),
            (10.0, "Pulling", 'Pulling image "example.com/missing:v1"'),
        ]
        app = result.pods[0].statuses[0]
        assert (app.reason, app.pull_attempts) == ("PodInitializing", 0)

    def test_a_failed_app_container_does_not_stop_the_next(self):
        result = simulate(
            {
                "duration": "5s",
                "registry": {"images": [image(B, 0)]},
                "workload": [{"pod": pod("p", "example.com/missing:v1", B)}],
            }
        )
        reasons = [(t, r) for t, r, _ in events(result, "p-0")]
        assert reasons == [
            (0.0, "Pulling"),
            (0.0, "Failed"),
            (0.0, "Failed"),
            (0.0, "Pulling"),
            (0.0, "Pulled"),
        ]
        first, second = result.pods[0].statuses
        assert (first.reason, second.state.value) == ("ErrImagePull", "running")


@pytest.mark.parametrize("parallel", [None, 1, 3])
def test_queue_order_is_first_come_first_served(parallel):
    kubelet: dict[str, object] = {"registryPullQPS": 0}
    if parallel is None:
        kubelet["serializeImagePulls"] = True
    else:
        kubelet.update(serializeImagePulls=False, maxParallelImagePulls=parallel)
    names = [f"example.com/i{n}:v1" for n in range(6)]
    result = simulate(
        {
            "kubelet": kubelet,
            "nodes": {"bandwidth": "100Mi"},
            "registry": {"images": [image(n, 10) for n in names]},
            "workload": [{"pod": pod(f"p{i}", n)} for i, n in enumerate(names)],
        }
    )
    done = [m.split('"')[1] for _, _, m in events(result, reason="Pulled")]
    assert done == names
