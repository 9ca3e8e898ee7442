"""Node changes in `placement`: a cordoned node (the NodeUnschedulable filter, run before the
node selector's) takes no pod unless the pod tolerates its taint, new labels are matched at
once, and the FitError text counts each reason, sorted as the scheduler sorts it."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim_images.placement import Placer, Taint, Unschedulable, tolerates_unschedulable

PREEMPTION = "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
NODES = [("a", {"size": "s"}), ("b", {"size": "s"}), ("c", {"size": "l"})]


def test_a_cordoned_node_takes_no_pod_until_uncordoned() -> None:
    placer = Placer(NODES)
    placer.update("a", {"size": "s"}, unschedulable=True)
    assert [placer.place(None, {}) for _ in range(4)] == ["b", "c", "b", "c"]
    placer.update("a", {"size": "s"}, unschedulable=False)
    assert placer.place(None, {}) == "a"


def test_the_fit_error_counts_each_reason_sorted_as_strings() -> None:
    placer = Placer(NODES)
    placer.update("a", {"size": "s"}, unschedulable=True)
    placer.update("b", {"size": "s"}, unschedulable=True)
    assert placer.place(None, {"size": "s"}) == Unschedulable(
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        f"2 node(s) were unschedulable. {PREEMPTION}"
    )
    placer.update("c", {"size": "l"}, unschedulable=True)
    assert placer.place(None, {}) == Unschedulable(
        f"0/3 nodes are available: 3 node(s) were unschedulable. {PREEMPTION}"
    )
    # A pod pinned by spec.nodeName never meets the scheduler: the cordon does not apply.
    assert placer.place("a", {}) == "a"


def test_a_pod_that_tolerates_the_cordon_is_placed() -> None:
    placer = Placer(NODES)
    for name, labels in NODES:
        placer.update(name, labels, unschedulable=True)
    assert placer.place(None, {"size": "l"}, tolerations=[{"operator": "Exists"}]) == "c"


def test_new_labels_are_matched_at_once() -> None:
    placer = Placer(NODES)
    assert isinstance(placer.place(None, {"disk": "nvme"}), Unschedulable)
    placer.update("b", {"size": "s", "disk": "nvme"}, unschedulable=False)
    assert placer.place(None, {"disk": "nvme"}) == "b"


def test_a_taint_keeps_off_the_pods_that_do_not_tolerate_it() -> None:
    placer = Placer(NODES)
    placer.update("c", {"size": "l"}, unschedulable=False, taints=[Taint("db", "x", "NoSchedule")])
    placer.update("a", {"size": "s"}, unschedulable=True)
    placer.update(
        "b", {"size": "s"}, unschedulable=False, taints=[Taint("soft", "", "PreferNoSchedule")]
    )
    assert placer.place(None, {"size": "l"}) == Unschedulable(
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {db: x}, 1 node(s) were unschedulable. "
        f"{PREEMPTION}"
    )
    assert placer.place(None, {}) == "b"  # PreferNoSchedule only scores
    tolerant = [{"key": "db", "operator": "Equal", "value": "x", "effect": "NoSchedule"}]
    assert placer.place(None, {"size": "l"}, tolerations=tolerant) == "c"
    wrong_value = [{"key": "db", "value": "y"}]
    assert isinstance(placer.place(None, {"size": "l"}, tolerations=wrong_value), Unschedulable)


@pytest.mark.parametrize(
    ("tolerations", "expected"),
    [
        ([{"operator": "Exists"}], True),
        ([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}], True),
        ([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}], True),
        ([{"key": "node.kubernetes.io/unschedulable", "effect": "NoExecute"}], False),
        ([{"key": "node.kubernetes.io/unschedulable", "value": "x"}], False),
        ([{"key": "other", "operator": "Exists"}], False),
        (None, False),
        ("nonsense", False),
    ],
)
def test_tolerations_of_the_cordon_taint(tolerations: Any, expected: bool) -> None:
    assert tolerates_unschedulable(tolerations) is expected
