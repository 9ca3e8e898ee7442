"""Texts and conditions as the v1.32 kubelet writes them, and sidecar init containers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from simkit import events, image, pod, ready_at, simulate

from kubesim_images import manager
from kubesim_images.podworkers import State, containers_ready_condition, initialized_condition
from kubesim_images.reasons import pulled, truncate_ms_ns
from kubesim_images.scenario.report import summary
from kubesim_images.units import format_duration_ns

APP = "example.com/app:v1"
MESH = "example.com/mesh:v1"
BROKEN = "example.com/broken:v1"


class TestPulledDurations:
    """image_manager.go truncates both durations to the millisecond before printing them."""

    def test_truncated_not_rounded(self):
        assert pulled(APP, 1_234_999_600, 61_999_999_999, 7) == (
            'Successfully pulled image "example.com/app:v1" in 1.234s '
            "(1m1.999s including waiting). Image size: 7 bytes."
        )

    @given(st.integers(0, 10**13), st.integers(0, 10**13))
    def test_any_duration_prints_as_go_after_truncation(self, pull_ns, total_ns):
        expected = (
            f'Successfully pulled image "{APP}" in {format_duration_ns(truncate_ms_ns(pull_ns))} '
            f"({format_duration_ns(truncate_ms_ns(total_ns))} including waiting). "
            "Image size: 1 bytes."
        )
        assert pulled(APP, pull_ns, total_ns, 1) == expected

    def test_through_the_engine(self):
        # A 1.2349996 s round trip: Go prints 1.234s, rounding would print 1.235s.
        result = simulate(
            {
                "registry": {"latency": "1.2349996s", "images": [image(APP, 0)]},
                "workload": [{"pod": pod("p", APP)}],
            }
        )
        (message,) = [m for _, _, m in events(result, "p-0", "Pulled")]
        assert "in 1.234s (1.234s including waiting)" in message

    def test_texts_kept_once_per_process_survive_their_bounded_cache_being_emptied(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An image's reference and texts are cached for every node, up to a bound; a cache
        emptied while a pull is under way (here by the next image, at a bound of one) is
        filled again, and every text is as without the cache."""
        monkeypatch.setattr(manager, "_CACHE_LIMIT", 1)
        manager._REFS.clear()
        manager._TEXTS.clear()
        result = simulate(
            {
                "registry": {"latency": "1s", "images": [image(APP, 1), image(MESH, 1)]},
                "workload": [{"pod": pod("p", APP)}, {"pod": pod("q", MESH, APP)}],
            }
        )
        pulled_texts = [(e.pod, e.message) for e in result.events if e.reason == "Pulled"]
        assert [(name, text.split(" in ")[0]) for name, text in pulled_texts] == [
            ("p-0", f'Successfully pulled image "{APP}"'),
            ("q-0", f'Successfully pulled image "{MESH}"'),
            ("q-0", f'Container image "{APP}" already present on machine'),
        ]
        assert len(manager._TEXTS) == 1


def test_containerd_unknown_errors_lose_the_grpc_prefix():
    result = simulate(
        {
            "duration": "1s",
            "registry": {
                "images": [image(BROKEN, 0)],
                "faults": [{"image": BROKEN, "error": "internal error"}],
            },
            "workload": [{"pod": pod("p", BROKEN)}],
        }
    )
    (message,) = [m for _, _, m in events(result, "p-0", "Failed") if "pull image" in m]
    assert message == (
        f'Failed to pull image "{BROKEN}": failed to pull and unpack image "{BROKEN}": '
        f'failed to resolve reference "{BROKEN}": unexpected status from HEAD request to '
        "https://example.com/v2/broken/manifests/v1: 500 Internal Server Error"
    )
    assert result.pods[0].statuses[0].message == message.split(": ", 1)[1]


class TestSidecarInitContainers:
    """restartPolicy: Always init containers: pulled in order, then running, not completed."""

    def _spec(self, *init):
        manifest = pod("p", APP, init=init)
        manifest["spec"]["initContainers"][0]["restartPolicy"] = "Always"
        return {
            "duration": "30s",
            "registry": {
                "images": [image(APP, 0), image(MESH, 0), image(BROKEN, 0)],
                "faults": [{"image": BROKEN, "error": "manifest unknown"}],
            },
            "workload": [{"pod": manifest}],
        }

    def test_a_sidecar_is_pulled_in_order_then_keeps_running(self):
        result = simulate(self._spec(MESH, APP))
        pulls = [m for _, _, m in events(result, "p-0", "Pulling")]
        assert pulls == [f'Pulling image "{i}"' for i in (MESH, APP)]  # then present for c0
        status = result.pods[0]
        assert [(cs.container.name, cs.state) for cs in status.all_statuses()] == [
            ("init0", State.RUNNING),
            ("init1", State.TERMINATED),
            ("c0", State.RUNNING),
        ]
        assert ready_at(result) == {"p-0": 0.0}
        assert initialized_condition(status) == (True, "")
        assert containers_ready_condition(status) == (True, "")

    def test_an_init_container_behind_a_sidecar_holds_the_pod(self):
        result = simulate(self._spec(MESH, BROKEN, APP))
        status = result.pods[0]
        assert [cs.state for cs in status.all_statuses()] == [
            State.RUNNING,
            State.WAITING,
            State.WAITING,
            State.WAITING,
        ]
        assert initialized_condition(status) == (
            False,
            "containers with incomplete status: [init1 init2]",
        )
        assert containers_ready_condition(status) == (
            False,
            "containers with unready status: [c0]",
        )

    def test_a_sidecar_that_cannot_start_is_incomplete_and_unready(self):
        result = simulate(self._spec(BROKEN, APP))
        status = result.pods[0]
        assert initialized_condition(status) == (
            False,
            "containers with incomplete status: [init0 init1]",
        )
        assert containers_ready_condition(status) == (
            False,
            "containers with unready status: [init0 c0]",
        )


class TestReport:
    def test_never_ready_pods_rank_last_and_read_as_not_ready(self):
        # Three pods ready at 0 s, 1 s and 2 s; two never (their image is missing).
        result = simulate(
            {
                "duration": "1m",
                "nodes": {"count": 5, "bandwidth": "100Mi"},
                "registry": {
                    "images": [
                        image(APP, 0),
                        image("example.com/a:v1", 100),
                        image("example.com/b:v1", 200),
                        image(BROKEN, 0),
                    ],
                    "faults": [{"image": BROKEN, "error": "manifest unknown"}],
                },
                "workload": [
                    {"pod": pod("zero", APP)},
                    {"pod": pod("one", "example.com/a:v1")},
                    {"pod": pod("two", "example.com/b:v1")},
                    {"replicas": 2, "pod": pod("never", BROKEN)},
                ],
            }
        )
        report = summary(result)
        assert (report["pods"], report["podsReady"]) == (5, 3)
        # nearest rank over 5: p50 is the 3rd (2 s), p90 and p99 the 5th, max the 5th
        assert report["imagesReady"] == {"p50": 2.0, "p90": None, "p99": None, "max": None}

    def test_pull_outcomes_are_counted_where_they_happen(self):
        result = simulate(
            {
                "duration": "25s",
                "kubelet": {"registryPullQPS": 1, "registryBurst": 1, "serializeImagePulls": False},
                "registry": {
                    "images": [image(APP, 0), image(BROKEN, 0)],
                    "faults": [{"image": BROKEN, "error": "manifest unknown"}],
                },
                "workload": [{"pod": pod("a", APP)}, {"pod": pod("b", BROKEN)}],
            }
        )
        report = summary(result)
        # a pulls at 0; b is refused by QPS at 0, fails at 10 and is in back-off at 20
        assert (report["pulls"], report["failedPulls"], report["backoffs"]) == (3, 2, 1)
