"""The arithmetic of a rolling update (workloads.rollout) and the object rules the controllers
share (workloads.objects), against the numbers Kubernetes' deployment util tests use.

Surge rounds up, unavailability down, both zero becomes one unavailable; the new ReplicaSet
grows within replicas + maxSurge; old sets give up unhealthy pods first, then available ones
only while availability stays at replicas - maxUnavailable. A Hypothesis property walks whole
rollouts on counts alone and checks both bounds at every step.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesim_images.workloads import rollout
from kubesim_images.workloads.objects import (
    equal_ignore_hash,
    safe_encode,
    selector_matches,
    selector_string,
    template_hash,
)


class TestScaledValue:
    """`intstr.GetScaledValueFromIntOrPercent`."""

    @pytest.mark.parametrize(
        ("value", "total", "up", "expected"),
        [
            (3, 10, True, 3),
            ("25%", 10, True, 3),  # 2.5 up
            ("25%", 10, False, 2),  # 2.5 down
            ("25%", 4, False, 1),
            ("25%", 1, True, 1),
            ("25%", 1, False, 0),
            ("0%", 50, True, 0),
            ("100%", 7, False, 7),
            ("33%", 50, True, 17),  # 16.5 up
        ],
    )
    def test_rounding(self, value: int | str, total: int, up: bool, expected: int) -> None:
        assert rollout.scaled_value(value, total, round_up=up) == expected

    @pytest.mark.parametrize("value", ["25", "x%", "%", "-5%", True, None, 2.5])
    def test_refuses_what_is_neither_int_nor_percent(self, value: object) -> None:
        with pytest.raises(rollout.IntOrStringError):
            rollout.scaled_value(value, 10, round_up=True)


class TestFenceposts:
    def test_defaults_of_ten_replicas(self) -> None:
        assert rollout.fenceposts("25%", "25%", 10) == rollout.Fenceposts(3, 2)

    def test_both_rounding_to_zero_allows_one_unavailable(self) -> None:
        # 25% of 1: surge 1 (up), unavailable 0 (down) - surge alone moves the rollout.
        assert rollout.fenceposts("25%", "25%", 1) == rollout.Fenceposts(1, 0)
        # 10% of 3 both ways down to 0 for unavailable and 1 up for surge...
        assert rollout.fenceposts(0, "10%", 3) == rollout.Fenceposts(0, 1)

    def test_max_unavailable_never_exceeds_the_replicas(self) -> None:
        post = rollout.fenceposts(0, 10, 3)
        assert rollout.max_unavailable(post, 3) == 3
        assert rollout.max_unavailable(post, 0) == 0


class TestNewReplicaSetReplicas:
    def test_first_step_surges(self) -> None:
        # 10 replicas, surge 3: the new set may start with 3 while the old holds 10.
        post = rollout.Fenceposts(3, 2)
        assert rollout.new_rs_replicas(10, post, 0, [10, 0]) == 3

    def test_no_room_no_growth(self) -> None:
        post = rollout.Fenceposts(3, 2)
        assert rollout.new_rs_replicas(10, post, 3, [10, 3]) == 3

    def test_never_above_the_desired_count(self) -> None:
        post = rollout.Fenceposts(5, 0)
        assert rollout.new_rs_replicas(4, post, 2, [0, 2]) == 4


class TestOldReplicaSets:
    def test_budget_counts_the_new_sets_unavailable_pods_as_missing(self) -> None:
        # 10 replicas, 2 may be unavailable: 13 pods (10 old + 3 new, none available yet):
        # 13 - 8 - 3 = 2, the unavailability allowance and no more.
        post = rollout.Fenceposts(3, 2)
        assert rollout.old_scale_down_budget(10, post, 13, 3, 0) == 2
        # Once the 3 new pods are available, 5 old ones may go: 13 - 8 - 0.
        assert rollout.old_scale_down_budget(10, post, 13, 3, 3) == 5

    def test_unhealthy_pods_go_first_oldest_set_first(self) -> None:
        old = [rollout.OldSet("a", 3, 1), rollout.OldSet("b", 4, 4), rollout.OldSet("c", 2, 0)]
        assert rollout.cleanup_unhealthy(old, 3) == {"a": 1, "c": 1}

    def test_available_pods_go_only_above_the_minimum(self) -> None:
        old = [rollout.OldSet("a", 2, 2), rollout.OldSet("b", 5, 5)]
        assert rollout.scale_down_old(old, 10, 8) == {"a": 0}
        assert rollout.scale_down_old(old, 8, 8) == {}
        assert rollout.scale_down_old(old, 11, 8) == {"a": 0, "b": 4}


@given(
    replicas=st.integers(min_value=1, max_value=60),
    surge=st.one_of(st.integers(0, 10), st.sampled_from(["0%", "10%", "25%", "50%", "100%"])),
    unavailable=st.one_of(st.integers(0, 10), st.sampled_from(["0%", "25%", "50%"])),
)
def test_a_rollout_on_counts_stays_within_both_bounds_and_finishes(
    replicas: int, surge: int | str, unavailable: int | str
) -> None:
    """Pods become available the step after they are created; each step is one controller
    sync. At every step: total pods <= replicas + surge, available >= replicas - unavailable."""
    post = rollout.fenceposts(surge, unavailable, replicas)
    floor = replicas - rollout.max_unavailable(post, replicas)
    old_spec, old_avail, new_spec, new_avail = replicas, replicas, 0, 0
    for _ in range(4 * replicas + 10):
        if old_spec == 0 and new_avail == replicas:
            break
        new_avail = new_spec  # the pods created by the last step are ready now
        new_spec = rollout.new_rs_replicas(replicas, post, new_spec, [old_spec, new_spec])
        assert old_spec + new_spec <= replicas + post.max_surge
        budget = rollout.old_scale_down_budget(
            replicas, post, old_spec + new_spec, new_spec, new_avail
        )
        if budget > 0 and old_spec:
            plan = rollout.scale_down_old(
                [rollout.OldSet("old", old_spec, old_avail)], old_avail + new_avail, floor
            )
            old_spec = plan.get("old", old_spec)
            old_avail = min(old_avail, old_spec)
        assert old_avail + new_avail >= floor
    assert (old_spec, new_avail) == (0, replicas)


class TestObjects:
    def test_selector_match_labels_and_expressions(self) -> None:
        selector = {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        }
        assert selector_matches(selector, {"app": "web", "tier": "a"})
        assert not selector_matches(selector, {"app": "web", "tier": "c"})
        assert not selector_matches(selector, {"app": "web", "tier": "a", "canary": "1"})
        assert not selector_matches({}, {"app": "web"})  # empty selects nothing
        assert selector_string(selector) == "!canary,app=web,tier in (a,b)"

    def test_template_hash_is_stable_and_safe(self) -> None:
        template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}
        first = template_hash(template)
        assert first == template_hash({**template})
        assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")
        assert template_hash(template, collision_count=1) != first
        assert safe_encode("0123") == "4567"  # ord("0") = 48, 48 % 27 = 21: "4"

    def test_equal_ignore_hash_reads_templates_as_go_structs_do(self) -> None:
        ours = {
            "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        }
        # What `kubectl rollout undo` sends back: a Go struct's empty values and no hash.
        echoed = {
            "metadata": {"labels": {"app": "web"}, "creationTimestamp": None},
            "spec": {"containers": [{"name": "c", "image": "x", "resources": {}}]},
        }
        assert equal_ignore_hash(ours, echoed)
        echoed["spec"]["containers"][0]["image"] = "y"
        assert not equal_ignore_hash(ours, echoed)
