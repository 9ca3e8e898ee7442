"""Which node runs a pod: the part of scheduling the image manager's questions depend on.

Sans-I/O: the caller keeps the nodes' labels and says when a pod is bound or gone. The rules:
- `spec.nodeName` set: the pod is that node's, as when a pod is created already bound (the
  scheduler never sees it). A name no node has leaves the pod Pending with no event, as no
  kubelet ever picks it up.
- otherwise the nodes whose labels hold every `nodeSelector` pair and that match the required
  node affinity (`spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`,
  as the scheduler's NodeAffinity filter: terms ORed, a term's requirements ANDed, an empty or
  malformed term matching nothing) are feasible, and the pod goes
  to the feasible node with the fewest pods, the first listed among equals: pods spread evenly
  and, created one by one on empty nodes, round-robin (which scenario files promise).
- a cordoned node (`spec.unschedulable`) is not feasible unless the pod tolerates its
  `node.kubernetes.io/unschedulable:NoSchedule` taint (the NodeUnschedulable filter), nor is a
  node with a NoSchedule or NoExecute taint the pod does not tolerate (TaintToleration); both
  run before the node selector's filter.
- no feasible node: Pending, with the scheduler's `FailedScheduling` text (v1.32: each node's
  first failing filter, counted per reason and sorted as its FitError does; no preemption
  victims because the simulation has no priorities).

A node's labels, cordon and taints change at run time (`update`): the caller then offers its pending
pods again, as kube-scheduler moves unschedulable pods back to its active queue on a node update.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The operators of a NodeSelectorRequirement (matchExpressions); matchFields takes In/NotIn.
_OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"})
_NAME_FIELD = "metadata.name"  # the only field matchFields may name
# The taint a cordoned node carries (TaintNodeUnschedulable), and the filters' reasons.
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
_CORDONED = "node(s) were unschedulable"
_MISMATCHED = "node(s) didn't match Pod's node affinity/selector"


@dataclass(frozen=True, slots=True)
class Unschedulable:
    """No node fits: the pod stays Pending; `message` is None when no event is due."""

    message: str | None


@dataclass(frozen=True, slots=True)
class Requirement:
    """One NodeSelectorRequirement: on a node label, or (`on_name`) on the node's name."""

    key: str
    operator: str
    values: tuple[str, ...]
    on_name: bool = False

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        value = name if self.on_name else labels.get(self.key)
        op = self.operator
        if op == "In":
            return value is not None and value in self.values
        if op == "NotIn":
            return value is None or value not in self.values
        if op == "Exists":
            return value is not None
        if op == "DoesNotExist":
            return value is None
        # Gt / Lt: both sides integers, else no match (labels.Selector's rule).
        try:
            have, bound = int(value or ""), int(self.values[0])
        except ValueError:
            return False
        return have > bound if op == "Gt" else have < bound


# A term's requirements (ANDed); None for a malformed term, which matches no node.
Term = tuple[Requirement, ...] | None
# The required node affinity: its terms, ORed; None when the pod has none.
NodeAffinity = tuple[Term, ...] | None


def node_affinity(spec: Mapping[str, Any]) -> NodeAffinity:
    """The required node affinity of a pod spec, as the scheduler reads it."""
    affinity = spec.get("affinity")
    node = affinity.get("nodeAffinity") if isinstance(affinity, Mapping) else None
    required = (
        node.get("requiredDuringSchedulingIgnoredDuringExecution")
        if isinstance(node, Mapping)
        else None
    )
    if not isinstance(required, Mapping):
        return None
    terms = required.get("nodeSelectorTerms")
    return tuple(_term(t) for t in terms) if isinstance(terms, list) else ()


def _term(raw: Any) -> Term:
    if not isinstance(raw, Mapping):
        return None
    out: list[Requirement] = []
    for field, on_name in (("matchExpressions", False), ("matchFields", True)):
        for req in raw.get(field) or ():
            parsed = _requirement(req, on_name=on_name)
            if parsed is None:
                return None
            out.append(parsed)
    return tuple(out) or None  # an empty term matches no node


def _requirement(raw: Any, *, on_name: bool) -> Requirement | None:
    if not isinstance(raw, Mapping):
        return None
    key, op, values = raw.get("key"), raw.get("operator"), raw.get("values") or []
    if not isinstance(key, str) or op not in _OPERATORS or not isinstance(values, list):
        return None
    values_t = tuple(str(v) for v in values)
    if on_name and (key != _NAME_FIELD or op not in {"In", "NotIn"} or len(values_t) != 1):
        return None
    if op in {"In", "NotIn"} and not values_t:
        return None
    if op in {"Exists", "DoesNotExist"} and values_t:
        return None
    if op in {"Gt", "Lt"} and len(values_t) != 1:
        return None
    return Requirement(key, op, values_t, on_name)


def affinity_matches(affinity: NodeAffinity, name: str, labels: Mapping[str, str]) -> bool:
    if affinity is None:
        return True
    return any(term is not None and all(r.matches(name, labels) for r in term) for term in affinity)


@dataclass(frozen=True, slots=True)
class Taint:
    """A node taint that keeps pods off (effect NoSchedule or NoExecute)."""

    key: str
    value: str
    effect: str


# The effects the TaintToleration filter checks (PreferNoSchedule only scores).
FILTERED_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
CORDON = Taint(UNSCHEDULABLE_TAINT, "", "NoSchedule")


def tolerates(tolerations: Any, taint: Taint) -> bool:
    """Whether a pod's `spec.tolerations` tolerate `taint` (v1.Toleration.ToleratesTaint)."""
    if not isinstance(tolerations, list):
        return False
    for t in tolerations:
        if not isinstance(t, Mapping):
            continue
        if t.get("effect") and t.get("effect") != taint.effect:
            continue
        if t.get("key") and t.get("key") != taint.key:
            continue
        op = t.get("operator") or "Equal"
        if op == "Exists" or (op == "Equal" and (t.get("value") or "") == taint.value):
            return True
    return False


def tolerates_unschedulable(tolerations: Any) -> bool:
    """Whether a pod's `spec.tolerations` tolerate `node.kubernetes.io/unschedulable:NoSchedule`."""
    return tolerates(tolerations, CORDON)


def _untolerated(taint: Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


def failed_scheduling(
    total: int, mismatched: int, cordoned: int = 0, others: Mapping[str, int] | None = None
) -> str:
    """The scheduler's FitError text: each reason with its count of nodes, sorted as strings."""
    counted = [(_CORDONED, cordoned), (_MISMATCHED, mismatched), *(others or {}).items()]
    reasons = sorted(f"{count} {reason}" for reason, count in counted if count)
    said = ", ".join(reasons or [f"{mismatched} {_MISMATCHED}"])
    return (
        f"0/{total} nodes are available: {said}. preemption: 0/{total} nodes are available: "
        f"{total} Preemption is not helpful for scheduling."
    )


class Placer:
    """Pods per node, and the choice for the next one. With no selector (the common case at
    scale) the choice is the least loaded node, the first on ties: the lowest index in the
    lowest level of a heap of node indices per pod count, O(log N) per pod for a million
    nodes, comparing integers, not tuples."""

    __slots__ = (
        "_cordoned",
        "_entries",
        "_index",
        "_labels",
        "_levels",
        "_low",
        "_names",
        "_pods",
        "_taints",
    )

    def __init__(self, nodes: Sequence[tuple[str, Mapping[str, str]]]) -> None:
        self._names = [name for name, _ in nodes]
        self._labels = [labels for _, labels in nodes]
        self._index = {name: i for i, name in enumerate(self._names)}
        self._pods = [0] * len(nodes)
        # Pod count -> a heap of the indices of nodes with that many pods; an entry goes stale
        # when its node's count changes, and is dropped when it comes to the top.
        self._levels: dict[int, list[int]] = {0: list(range(len(nodes)))}
        self._low = 0  # no node has fewer pods
        self._entries = len(nodes)
        self._cordoned: set[int] = set()
        self._taints: dict[int, tuple[Taint, ...]] = {}  # the nodes with filtering taints

    def update(
        self,
        node: str,
        labels: Mapping[str, str],
        *,
        unschedulable: bool,
        taints: Sequence[Taint] = (),
    ) -> None:
        """A node's labels, cordon or taints changed (`kubectl label`, `cordon`, `taint`);
        `taints` are those besides the cordon's."""
        index = self._index[node]
        self._labels[index] = dict(labels)
        kept = tuple(t for t in taints if t.effect in FILTERED_EFFECTS)
        if kept:
            self._taints[index] = kept
        else:
            self._taints.pop(index, None)
        if unschedulable:
            self._cordoned.add(index)
        else:
            self._cordoned.discard(index)

    @property
    def nodes(self) -> list[str]:
        return list(self._names)

    def pods_on(self, node: str) -> int:
        return self._pods[self._index[node]]

    def place(
        self,
        node_name: str | None,
        selector: Mapping[str, str],
        affinity: NodeAffinity = None,
        *,
        tolerations: Any = None,
    ) -> str | Unschedulable:
        """The node the pod is bound to (counted as holding it), or why it stays Pending."""
        if node_name:
            index = self._index.get(node_name)
            if index is None:
                return Unschedulable(None)
        elif selector or affinity is not None or self._cordoned or self._taints:
            feasible, reasons = self._filter(selector, affinity, tolerations)
            if not feasible:
                cordoned = reasons.pop(_CORDONED, 0)
                mismatched = reasons.pop(_MISMATCHED, 0)
                return Unschedulable(
                    failed_scheduling(len(self._names), mismatched, cordoned, reasons)
                )
            index = min(feasible, key=lambda i: (self._pods[i], i))
        else:
            if not self._names:
                return Unschedulable(failed_scheduling(0, 0))
            index = self._least_loaded()
        self._add(index, 1)
        return self._names[index]

    def _filter(
        self, selector: Mapping[str, str], affinity: NodeAffinity, tolerations: Any
    ) -> tuple[list[int], dict[str, int]]:
        """The feasible nodes, and the others counted by the first filter each fails, in the
        scheduler's order: NodeUnschedulable, TaintToleration, NodeAffinity."""
        names = self._names
        feasible: list[int] = []
        reasons: dict[str, int] = {}
        cordon_ok = tolerates(tolerations, CORDON) if self._cordoned else True
        for i, labels in enumerate(self._labels):
            reason = None
            if i in self._cordoned and not cordon_ok:
                reason = _CORDONED
            elif untolerated := [
                t for t in self._taints.get(i, ()) if not tolerates(tolerations, t)
            ]:
                reason = _untolerated(untolerated[0])
            elif not (
                all(labels.get(k) == v for k, v in selector.items())
                and affinity_matches(affinity, names[i], labels)
            ):
                reason = _MISMATCHED
            if reason is None:
                feasible.append(i)
            else:
                reasons[reason] = reasons.get(reason, 0) + 1
        return feasible, reasons

    def release(self, node: str) -> None:
        """A pod bound to `node` is gone."""
        self._add(self._index[node], -1)

    def _least_loaded(self) -> int:
        pods = self._pods
        levels = self._levels
        low = self._low
        while True:
            heap = levels.get(low)
            if heap:
                index = heap[0]
                if pods[index] == low:
                    self._low = low
                    return index
                heapq.heappop(heap)  # stale: the node's count changed since
                self._entries -= 1
                continue
            levels.pop(low, None)
            low += 1  # some node has at least `low` pods: each has an entry at its count

    def _add(self, index: int, delta: int) -> None:
        pods = self._pods
        count = pods[index] = pods[index] + delta
        heap = self._levels.get(count)
        if heap is None:
            self._levels[count] = [index]
        else:
            heapq.heappush(heap, index)
        if count < self._low:  # noqa: PLR1730 - a branch, not a call, per pod
            self._low = count
        self._entries += 1
        if self._entries > 2 * len(pods) + 64:
            # Churn (pods created and deleted for days) would otherwise grow them without bound.
            levels: dict[int, list[int]] = {}
            for i, n in enumerate(pods):
                levels.setdefault(n, []).append(i)  # indices in order: each list is a heap
            self._levels = levels
            self._low = min(pods)
            self._entries = len(pods)
