"""Back-off and pod-sync cadence (SPEC section 4), exact in virtual time."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from simkit import events, image, pod, ready_at, simulate

from kubesim_images.backoff import Backoff
from kubesim_images.clock import run_virtual
from kubesim_images.errors import ErrImagePull, ImagePullBackOff
from kubesim_images.events import EventLog
from kubesim_images.kubeletconfig import KubeletConfig
from kubesim_images.node import Node
from kubesim_images.pod import pod_from_manifest
from kubesim_images.reference import parse_normalized
from kubesim_images.registry.catalogue import Catalogue, make_image
from kubesim_images.registry.simulated import Fault, SimulatedRegistry
from kubesim_images.store import ImageStore

BROKEN = "example.com/broken:v1"
S = 1_000_000_000  # one second in the engine's nanoseconds


class TestWorkedExample:
    """SPEC 4's worked example: first two pulls fail, zero latency and size."""

    def test_timeline(self):
        result = simulate(
            {
                "registry": {
                    "images": [image(BROKEN, 0)],
                    "faults": [{"image": BROKEN, "failFirst": 2, "error": "toomanyrequests"}],
                },
                "workload": [{"pod": pod("p", BROKEN)}],
            }
        )
        timeline = [(t, r) for t, r, m in events(result, "p-0") if not m.startswith("Error:")]
        assert timeline == [
            (0.0, "Pulling"),
            (0.0, "Failed"),
            (10.0, "Pulling"),
            (10.0, "Failed"),
            (20.0, "BackOff"),
            (30.0, "Pulling"),
            (30.0, "Pulled"),
        ]
        assert ready_at(result) == {"p-0": 30.0}
        container = result.pods[0].statuses[0]
        assert container.pull_attempts == 3


class TestBackoffSequence:
    """A pull that always fails: back-off 10, 20, 40, ... capped at 300 s."""

    def test_pull_times_follow_the_doubling_back_off(self):
        result = simulate(
            {
                "duration": "16m",
                "registry": {
                    "images": [image(BROKEN, 0)],
                    "faults": [{"image": BROKEN, "error": "unauthorized"}],
                },
                "workload": [{"pod": pod("p", BROKEN)}],
            }
        )
        pulls = [t for t, _, _ in events(result, "p-0", "Pulling")]
        assert pulls == [0.0, 10.0, 30.0, 70.0, 150.0, 310.0, 610.0, 910.0]
        gaps = [b - a for a, b in itertools.pairwise(pulls)]
        assert gaps == [10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]
        # Every requeue in between (every 10 s) finds the image in back-off.
        backoffs = [t for t, _, _ in events(result, "p-0", "BackOff")]
        assert backoffs[:4] == [20.0, 40.0, 50.0, 60.0]
        assert len(pulls) + len(backoffs) == 96 + 1  # syncs at 0, 10, ..., 960
        status = result.pods[0].statuses[0]
        assert status.reason == "ImagePullBackOff"
        # Since 1.32 the kubelet appends the last pull error to the back-off message; the
        # BackOff event itself keeps the short text.
        assert status.message.startswith(f'Back-off pulling image "{BROKEN}": ErrImagePull: ')
        assert "pull access denied" in status.message
        assert events(result, "p-0", "BackOff")[0][2] == f'Back-off pulling image "{BROKEN}"'

    def test_failed_pull_sets_err_image_pull_with_the_registry_error(self):
        result = simulate(
            {
                "duration": "5s",
                "registry": {
                    "images": [image(BROKEN, 0)],
                    "faults": [{"image": BROKEN, "error": "unauthorized"}],
                },
                "workload": [{"pod": pod("p", BROKEN)}],
            }
        )
        status = result.pods[0].statuses[0]
        assert status.reason == "ErrImagePull"
        assert "pull access denied" in status.message
        assert events(result, "p-0", "Failed")[1][2] == "Error: ErrImagePull"

    def test_jitter_delays_requeues_by_up_to_the_factor(self):
        result = simulate(
            {
                "duration": "10m",
                "sync": {"errorRequeue": "10s", "jitterFactor": 0.5},
                "registry": {
                    "images": [image(BROKEN, 0)],
                    "faults": [{"image": BROKEN, "error": "unauthorized"}],
                },
                "workload": [{"pod": pod("p", BROKEN)}],
            }
        )
        syncs = sorted({t for t, r, _ in events(result, "p-0") if r in {"Pulling", "BackOff"}})
        gaps = [b - a for a, b in itertools.pairwise(syncs)]
        assert all(10.0 <= g <= 15.0 for g in gaps)
        assert len(set(gaps)) > 1


def _run_manager(script):
    """Drive one node's image manager directly, with a registry whose faults we choose."""

    async def main():
        ref = parse_normalized(BROKEN)
        registry = SimulatedRegistry(
            Catalogue([make_image(ref, [(0, None)])]),
            faults=[Fault(error="unauthorized", image=ref, fail_first=100)],
        )
        log = EventLog()
        node = Node("n", registry, KubeletConfig(registry_pull_qps=0), log, store=ImageStore())
        the_pod = pod_from_manifest(pod("p", BROKEN), uid="uid-1")
        return await script(node, the_pod, log)

    return run_virtual(main())


class TestQuietPeriod:
    """An entry not updated for more than 600 s (2 x max) starts again at 10 s."""

    def test_back_off_restarts_after_600_quiet_seconds(self):
        async def script(node, the_pod, _log):
            ensure = node.manager.ensure_image_exists
            container = the_pod.containers[0]
            outcomes = []
            for at in (0.0, 10.0, 30.0, 631.0, 640.0, 641.0):
                await asyncio.sleep(at - asyncio.get_running_loop().time())
                try:
                    await ensure(the_pod, container)
                except (ErrImagePull, ImagePullBackOff) as exc:
                    outcomes.append((at, exc.reason))
            return outcomes

        assert _run_manager(script) == [
            (0.0, "ErrImagePull"),
            (10.0, "ErrImagePull"),
            (30.0, "ErrImagePull"),
            # 601 s after the last update (back-off 40 s): expired, so pull and restart at 10 s.
            (631.0, "ErrImagePull"),
            (640.0, "ImagePullBackOff"),
            (641.0, "ErrImagePull"),
        ]

    def test_exactly_600_seconds_is_not_yet_expired(self):
        async def script(node, the_pod, _log):
            key = f"{the_pod.uid}_{BROKEN}"
            backoff = node.backoff
            backoff.next(key, 0)  # 10
            backoff.next(key, 0)  # 20
            return backoff.next(key, 600 * S), backoff.next(key, 1201 * S)

        assert _run_manager(script) == (40 * S, 10 * S)


class TestBackoffUnit:
    """flowcontrol.Backoff as backoff_test.go exercises it, in integer nanoseconds."""

    def test_doubling_and_cap(self):
        b = Backoff(1 * S, 5 * S)
        delays = [b.next("k", t * S) for t in range(6)]
        assert delays == [1 * S, 2 * S, 4 * S, 5 * S, 5 * S, 5 * S]

    def test_in_back_off_is_strict_to_the_nanosecond(self):
        b = Backoff(10 * S, 300 * S)
        b.next("k", 0)
        assert b.is_in_backoff_since_update("k", 10 * S - 1)
        assert not b.is_in_backoff_since_update("k", 10 * S)
        assert not b.is_in_backoff_since_update("other", 0)

    def test_float_seconds_would_get_this_tie_wrong(self):
        # Failures at 115.539 s and 125.539 s: back-off 20 s from 125.539 ends at 145.539 s,
        # where the kubelet pulls. In float seconds 145.539 - 125.539 is 19.999999999999986.
        assert 145.539 - 125.539 < 20.0
        b = Backoff()
        b.next("k", 115_539_000_000)
        b.next("k", 125_539_000_000)
        assert b.get("k").backoff == 20 * S
        assert b.is_in_backoff_since_update("k", 145_538_999_999)
        assert not b.is_in_backoff_since_update("k", 145_539_000_000)

    def test_gc_removes_only_entries_older_than_twice_the_cap(self):
        b = Backoff(1 * S, 10 * S)
        b.next("old", 0)
        b.next("new", 15 * S)
        b.gc(20 * S)
        assert set(b.entries()) == {"old", "new"}
        b.gc(20 * S + 1)
        assert set(b.entries()) == {"new"}

    def test_keys_are_independent(self):
        b = Backoff(1 * S, 100 * S)
        b.next("a", 0)
        b.next("a", 0)
        assert b.next("b", 0) == 1 * S
        assert b.get("a").backoff == 2 * S


class TestQPS:
    """registryPullQPS / registryBurst: a token bucket checked when the pull starts."""

    def test_burst_then_refusals_then_refill(self):
        names = [f"example.com/i{n}:v1" for n in range(5)]
        result = simulate(
            {
                "kubelet": {"serializeImagePulls": False, "registryPullQPS": 1, "registryBurst": 2},
                "registry": {"images": [image(n, 0) for n in names]},
                "workload": [{"pod": pod(f"p{i}", n)} for i, n in enumerate(names)],
            }
        )
        assert ready_at(result) == {
            "p0-0": 0.0,
            "p1-0": 0.0,
            "p2-0": 10.0,
            "p3-0": 10.0,
            "p4-0": 30.0,
        }
        refusals = [
            (t, m) for t, _, m in events(result, reason="Failed") if m.endswith("pull QPS exceeded")
        ]
        assert [t for t, _ in refusals] == [0.0, 0.0, 0.0, 10.0]
        assert refusals[0][1] == 'Failed to pull image "example.com/i2:v1": pull QPS exceeded'

    def test_refused_pull_counts_as_a_pull_attempt(self):
        result = simulate(
            {
                "kubelet": {"registryPullQPS": 1, "registryBurst": 1, "serializeImagePulls": False},
                "registry": {
                    "images": [image("example.com/a:v1", 0), image("example.com/b:v1", 0)]
                },
                "workload": [
                    {"pod": pod("a", "example.com/a:v1")},
                    {"pod": pod("b", "example.com/b:v1")},
                ],
            }
        )
        b = next(p for p in result.pods if p.pod.name == "b-0")
        assert b.statuses[0].pull_attempts == 2

    def test_token_taken_after_the_queue_wait(self):
        # Serial queue: the second pull starts at 1 s, when the bucket has refilled.
        result = simulate(
            {
                "kubelet": {"registryPullQPS": 1, "registryBurst": 1},
                "nodes": {"bandwidth": "100Mi"},
                "registry": {
                    "images": [image("example.com/a:v1", 100), image("example.com/b:v1", 100)]
                },
                "workload": [
                    {"pod": pod("a", "example.com/a:v1")},
                    {"pod": pod("b", "example.com/b:v1")},
                ],
            }
        )
        assert ready_at(result) == {"a-0": 1.0, "b-0": 2.0}


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("timeout", "RegistryUnavailable"),
        ("connection reset", "RegistryUnavailable"),
        ("toomanyrequests", "ErrImagePull"),
        ("manifest unknown", "ErrImagePull"),
    ],
)
def test_waiting_reason_by_registry_error(error, reason):
    result = simulate(
        {
            "duration": "1s",
            "registry": {
                "images": [image(BROKEN, 0)],
                "faults": [{"image": BROKEN, "error": error}],
            },
            "workload": [{"pod": pod("p", BROKEN)}],
        }
    )
    status = result.pods[0].statuses[0]
    assert status.reason == reason
    if reason == "RegistryUnavailable":
        assert status.message.startswith(
            f"image pull failed for {BROKEN} because the registry is unavailable: "
        )


def test_registry_rate_limit_answers_429_until_the_window_rolls():
    names = [f"example.com/i{n}:v1" for n in range(3)]
    result = simulate(
        {
            "kubelet": {"serializeImagePulls": True, "registryPullQPS": 0},
            "registry": {
                "images": [image(n, 0) for n in names],
                "rateLimit": {"pulls": 2, "window": "1m"},
            },
            "workload": [{"pod": pod(f"p{i}", n)} for i, n in enumerate(names)],
        }
    )
    failed = events(result, "p2-0", "Failed")
    assert "429 Too Many Requests" in failed[0][2]
    # Fails at 0, 10 (back-off 20 from 10), 30 (back-off 40 from 30); window 2 opens at 60:
    # the sync at 70 (30 + 40) pulls and succeeds.
    assert ready_at(result)["p2-0"] == 70.0
