"""FlowNetwork against its reference copy: every answer equal to the bit, over random workloads.

The flow model's float arithmetic decides completion nanoseconds, so a faster FlowNetwork must do
the same arithmetic in the same order. Both networks see the same calls at the same times, driven
as the simulated registry drives them (run every completion due, then act), and every answer is
compared with ==: completions, their order, rates and remaining bytes.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from unittest import mock

import flows_reference as reference
from hypothesis import given, settings
from hypothesis import strategies as st

from kubesim_images import flows
from kubesim_images.flows import FlowNetwork

INF = math.inf
S = 1_000_000_000

NODES = [f"n{i}" for i in range(12)]
# Few distinct values, so equal shares, equal finishes and same-nanosecond ties are common.
capacities = st.one_of(
    st.just(INF), st.sampled_from([1.0, 2.0, 3.0, 10.0, 125e6]), st.floats(0.5, 1000.0)
)
registries = st.one_of(
    st.just(INF), st.sampled_from([1.0, 10.0, 25.0, 2.5e9]), st.floats(1.0, 2000.0)
)
gaps = st.one_of(
    st.just(0),
    st.sampled_from([1, S // 2, S, 3 * S]),
    st.integers(0, 20 * S),
)
sizes = st.one_of(st.sampled_from([0, 1, 10, 100, 1000, 30 * 2**20]), st.integers(0, 5000))
ops = st.lists(
    st.one_of(
        st.tuples(st.just("start"), st.sampled_from(NODES), sizes, gaps),
        st.tuples(st.just("start"), st.sampled_from(NODES), sizes, st.just(0)),
        st.tuples(st.just("cancel"), st.integers(0, 100), gaps),
        st.tuples(st.just("wait"), gaps),
        st.tuples(st.just("bandwidth"), st.sampled_from(NODES), capacities),
    ),
    max_size=80,
)
node_caps = st.dictionaries(st.sampled_from(NODES), capacities, max_size=len(NODES))


class Pair:
    """The new and the reference network, called alike; each call's answers must be equal."""

    def __init__(self, registry: float, caps: dict[str, float]) -> None:
        self.new = FlowNetwork(registry)
        self.old = reference.FlowNetwork(registry)
        for node, bandwidth in caps.items():
            self.call("set_node_bandwidth", node, bandwidth)
        self.now = 0
        self.next_id = 0
        self.active: list[int] = []

    def call(self, name: str, *args: object) -> object:
        outcomes = []
        for net in (self.new, self.old):
            try:
                outcomes.append(("ok", getattr(net, name)(*args)))
            except (ValueError, KeyError) as exc:
                outcomes.append(("error", repr(exc)))
        assert outcomes[0] == outcomes[1], (name, args, outcomes)
        assert len(self.new) == len(self.old)
        return outcomes[0][1]

    def run_until(self, t: int) -> None:
        """As the registry's timer does: each completion due by t, at its own time."""
        while True:
            upcoming = self.call("next_completion")
            if upcoming is None or upcoming[0] > t:  # type: ignore[index]
                return
            self.finish(self.call("complete_due", upcoming[0]))  # type: ignore[index]

    def finish(self, ids: object) -> None:
        assert isinstance(ids, list)
        for fid in ids:
            self.active.remove(fid)

    def observe(self) -> None:
        for fid in self.active:
            self.call("rate", fid)
            self.call("remaining", fid, self.now)
            self.call("progress", fid, self.now)
        self.call("next_completion")

    def step(self, op: tuple[object, ...]) -> None:
        match op:
            case ("start", node, size, gap):
                self.advance(gap)
                self.next_id += 1
                self.call("start", self.next_id, node, size, self.now)
                self.active.append(self.next_id)
            case ("cancel", pick, gap):
                self.advance(gap)
                if self.active:
                    fid = self.active[pick % len(self.active)]  # type: ignore[operator]
                    self.call("cancel", fid, self.now)
                    # A flow that finished by now is not cancelled: it is reported next.
                    self.finish(self.call("complete_due", self.now))
                    if fid in self.active:
                        self.active.remove(fid)
            case ("wait", gap):
                self.advance(gap)
                self.finish(self.call("complete_due", self.now))
            case ("bandwidth", node, bandwidth):
                self.call("set_node_bandwidth", node, bandwidth)
        self.observe()

    def advance(self, gap: object) -> None:
        assert isinstance(gap, int)
        self.run_until(self.now + gap)
        self.now += gap

    def drain(self) -> None:
        self.run_until(10**21)
        self.finish(self.call("complete_due", 10**21))
        assert not self.active
        assert len(self.new) == 0


def play(registry: float, caps: dict[str, float], program: list[tuple[object, ...]]) -> None:
    pair = Pair(registry, caps)
    for op in program:
        pair.step(op)
    pair.drain()


@settings(max_examples=500, deadline=None)
@given(registries, node_caps, ops)
def test_agrees_with_the_reference_to_the_bit(registry, caps, program):
    play(registry, caps, program)


@settings(max_examples=150, deadline=None)
@given(registries.filter(lambda r: r != INF), node_caps, ops)
def test_sorting_fallback_agrees_with_the_reference(registry, caps, program):
    with ExitStack() as stack:
        for module in (flows, reference):
            stack.enter_context(mock.patch.object(module, "_REBALANCE_SLACK", -(10**9)))
        play(registry, caps, program)


@settings(max_examples=150, deadline=None)
@given(registries, node_caps, ops)
def test_sweeping_stale_entries_at_once_changes_no_answer(registry, caps, program):
    """Stale queue and heap entries are swept whenever they outnumber the busy nodes at all
    (normally only past hundreds), so every sweep path runs, and must leave answers alone."""
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(flows, "_COMPACT_MIN", 0))
        stack.enter_context(mock.patch.object(flows, "_COMPACT_FACTOR", 1))
        play(registry, caps, program)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([2.5e9, 1000.0, 77.7]),
    st.lists(
        st.tuples(st.sampled_from(NODES), st.sampled_from([30 * 2**20, 40 * 2**20, 1000]), gaps),
        min_size=1,
        max_size=120,
    ),
)
def test_many_nodes_held_at_the_water_level_agree(registry, starts):
    """The bench's shape: every node at one downlink, most of them sharing the registry."""
    pair = Pair(registry, dict.fromkeys(NODES, 125e6))
    for node, size, gap in starts:
        pair.step(("start", node, size, gap % (S // 10)))
    pair.drain()
