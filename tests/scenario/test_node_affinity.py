"""Required node affinity in `placement`: terms ORed, requirements ANDed, each operator on node
labels (and matchFields on the node's name), as the scheduler's NodeAffinity filter decides."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim_images.placement import Placer, Unschedulable, failed_scheduling, node_affinity

NODES = [
    ("a", {"zone": "east", "cores": "4"}),
    ("b", {"zone": "west", "cores": "16", "gpu": "yes"}),
    ("c", {"zone": "west"}),
]


def _spec(*terms: dict[str, Any]) -> dict[str, Any]:
    required = {"nodeSelectorTerms": list(terms)}
    return {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}
    }


def _expr(key: str, op: str, *values: str) -> dict[str, Any]:
    req: dict[str, Any] = {"key": key, "operator": op}
    if values:
        req["values"] = list(values)
    return {"matchExpressions": [req]}


def _feasible(spec: dict[str, Any]) -> set[str]:
    """The nodes the pod may land on: each asked alone, as the filter judges node by node."""
    affinity = node_affinity(spec)
    return {
        name for name, labels in NODES if Placer([(name, labels)]).place(None, {}, affinity) == name
    }


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (_spec(_expr("zone", "In", "west")), {"b", "c"}),
        (_spec(_expr("zone", "NotIn", "west")), {"a"}),
        (_spec(_expr("gpu", "Exists")), {"b"}),
        (_spec(_expr("gpu", "DoesNotExist")), {"a", "c"}),
        (_spec(_expr("cores", "Gt", "8")), {"b"}),  # c has no label: no match
        (_spec(_expr("cores", "Lt", "8")), {"a"}),
        (_spec(_expr("zone", "In", "east"), _expr("gpu", "Exists")), {"a", "b"}),  # ORed
        (
            _spec(
                {
                    "matchExpressions": [
                        {"key": "zone", "operator": "In", "values": ["west"]},
                        {"key": "gpu", "operator": "DoesNotExist"},
                    ]
                }
            ),
            {"c"},  # ANDed
        ),
        (
            _spec({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]}),
            {"c"},
        ),
        (
            _spec(
                {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["a"]}]}
            ),
            {"b", "c"},
        ),
        (_spec({}, _expr("zone", "In", "east")), {"a"}),  # an empty term matches nothing
        (_spec(_expr("cores", "Gt", "x")), set()),  # not an integer
        ({}, {"a", "b", "c"}),
    ],
)
def test_required_node_affinity_picks_the_matching_nodes(
    spec: dict[str, Any], expected: set[str]
) -> None:
    assert _feasible(spec) == expected


def test_no_matching_node_is_the_schedulers_failed_scheduling() -> None:
    placer = Placer(NODES)
    got = placer.place(None, {}, node_affinity(_spec(_expr("zone", "In", "north"))))
    assert got == Unschedulable(failed_scheduling(3, 3))
    assert [placer.pods_on(n) for n, _ in NODES] == [0, 0, 0]


def test_node_selector_and_affinity_must_both_match() -> None:
    placer = Placer(NODES)
    affinity = node_affinity(_spec(_expr("zone", "In", "west")))
    assert placer.place(None, {"gpu": "yes"}, affinity) == "b"
    assert placer.place(None, {"zone": "east"}, affinity) == Unschedulable(failed_scheduling(3, 3))
