"""Integer-nanosecond time: the cases float seconds decided wrongly, each at a non-round time.

Every case is one the kubelet decides with whole nanoseconds (`IsInBackOffSinceUpdate`: strict
`<` on int64 ns; `x/time/rate`: elapsed int64 ns), and one where float seconds landed a hair to
the wrong side. The expected timelines are worked by hand in the comments.
"""

from __future__ import annotations

from simkit import events, image, pod, ready_at, simulate

FLAKY = "example.com/flaky:v1"


def _timeline(result, name):
    return [(t, r) for t, r, m in events(result, name) if not m.startswith("Error:")]


def test_back_off_ends_exactly_on_a_requeue_at_non_round_times():
    # Created at 115.539 s; fails there (back-off 10 s) and at the requeue 125.539 s (10 s is
    # not < 10 s; back-off 20 s from 125.539); 135.539 is in back-off; at 145.539 exactly 20 s
    # have passed, so the kubelet pulls (float seconds: 145.539 - 125.539 < 20, a BackOff).
    result = simulate(
        {
            "registry": {
                "images": [image(FLAKY, 0)],
                "faults": [{"image": FLAKY, "failFirst": 2, "error": "toomanyrequests"}],
            },
            "workload": [{"at": "115.539s", "pod": pod("p", FLAKY)}],
        }
    )
    assert _timeline(result, "p-0") == [
        (115.539, "Pulling"),
        (115.539, "Failed"),
        (125.539, "Pulling"),
        (125.539, "Failed"),
        (135.539, "BackOff"),
        (145.539, "Pulling"),
        (145.539, "Pulled"),
    ]
    assert ready_at(result) == {"p-0": 145.539}


def test_a_10ms_pull_shifts_every_sync_without_losing_a_nanosecond():
    # The pod's first container fails at once; its second takes 10 ms to pull (1 MiB at
    # 100 MiB/s) in the first sync, so every requeue sits 10 ms past the second: fail at 0
    # (back-off 10), pull at 10.01 fails (20), BackOff at 20.01, pull at 30.01 fails (40),
    # BackOff at 40.01, 50.01 and 60.01, and at 70.01 exactly 40 s have passed: a pull.
    fast = "example.com/fast:v1"
    result = simulate(
        {
            "duration": "75s",
            "nodes": {"bandwidth": "100Mi"},
            "registry": {
                "images": [image(FLAKY, 0), image(fast, 1)],
                "faults": [{"image": FLAKY, "failFirst": 3, "error": "toomanyrequests"}],
            },
            "workload": [{"pod": pod("p", FLAKY, fast)}],
        }
    )
    flaky = [(t, r) for t, r, m in events(result, "p-0") if FLAKY in m]
    assert flaky == [
        (0.0, "Pulling"),
        (0.0, "Failed"),
        (10.01, "Pulling"),
        (10.01, "Failed"),
        (20.01, "BackOff"),
        (30.01, "Pulling"),
        (30.01, "Failed"),
        (40.01, "BackOff"),
        (50.01, "BackOff"),
        (60.01, "BackOff"),
        (70.01, "Pulling"),
        (70.01, "Pulled"),
    ]


def test_a_700ms_round_trip_lands_the_sync_exactly_on_the_back_off_end():
    # Failures at 0.7 (back-off 10), 11.4 (pull at 10.7; 20), BackOff at 21.4, pull at 31.4
    # fails at 32.1 (40), BackOff at 42.1, 52.1, 62.1, then at 72.1 exactly 40 s: a pull.
    result = simulate(
        {
            "duration": "80s",
            "registry": {
                "latency": "700ms",
                "images": [image(FLAKY, 0)],
                "faults": [{"image": FLAKY, "failFirst": 3, "error": "toomanyrequests"}],
            },
            "workload": [{"pod": pod("p", FLAKY)}],
        }
    )
    timeline = _timeline(result, "p-0")
    assert (72.1, "Pulling") in timeline
    assert (72.1, "BackOff") not in timeline
    assert timeline[-1] == (72.8, "Pulled")


def test_one_qps_allows_a_pull_exactly_one_second_later():
    # registryPullQPS 1, burst 1: the pull at 15.06 s takes the only token; at 16.06 s exactly
    # one second has passed, one token has refilled (float seconds: 0.9999999999999982).
    result = simulate(
        {
            "kubelet": {"registryPullQPS": 1, "registryBurst": 1, "serializeImagePulls": False},
            "registry": {"images": [image("example.com/a:v1", 0), image("example.com/b:v1", 0)]},
            "workload": [
                {"at": "15.06s", "pod": pod("a", "example.com/a:v1")},
                {"at": "16.06s", "pod": pod("b", "example.com/b:v1")},
            ],
        }
    )
    assert not [m for _, _, m in events(result, reason="Failed")]
    assert ready_at(result) == {"a-0": 15.06, "b-0": 16.06}


def test_one_qps_refuses_a_pull_one_nanosecond_early():
    result = simulate(
        {
            "duration": "17s",
            "kubelet": {"registryPullQPS": 1, "registryBurst": 1, "serializeImagePulls": False},
            "registry": {"images": [image("example.com/a:v1", 0), image("example.com/b:v1", 0)]},
            "workload": [
                {"at": "15.06s", "pod": pod("a", "example.com/a:v1")},
                {"at": "16.059999999s", "pod": pod("b", "example.com/b:v1")},
            ],
        }
    )
    refused = [m for _, _, m in events(result, "b-0", "Failed") if m.endswith("QPS exceeded")]
    assert refused == ['Failed to pull image "example.com/b:v1": pull QPS exceeded']
