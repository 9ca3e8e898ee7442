"""Max-min fair sharing of download bandwidth between concurrent image pulls.

This module owns the byte-level physics of pulls and nothing else: how many bytes per second each
download gets and when each one finishes. It is pure (no clock, no asyncio, no I/O) so the
simulated kubelet can drive it from a discrete-event loop and tests can check it exactly.

Why it is shaped this way: every flow on a node always runs at the same rate (the node's equal
share, or the registry's water level when that is lower), so a node behaves like a
processor-sharing queue. Each node keeps a virtual clock of bytes served per flow and a flow is
done when that clock has moved by its size, so a rate change touches one node, never its flows.
Nodes held at the water level share one global clock, so moving the level is O(1); the split
between nodes capped by their own downlink and nodes held at the level is kept incrementally with
two heaps, which is what lets 1,000+ nodes re-share on every start and finish.

Where the time goes at 10,000 nodes: nodes start and finish in waves, thousands at one instant,
so every start and finish costs a re-share and a due-queue push or pop. A re-share that moves no
node reads the share heaps' tops as they stand (stale entries only ever sit above the live ones);
a due queue serves entries that arrived in ascending order (a wave) from a run, not a heap; the
earliest completion is worked out once per change. Each node's next completion is still queued
afresh after every change to it: its key is computed from the clocks as they stand then, and the
float arithmetic must stay exactly as it is, since it decides completion nanoseconds
(tests/flows/test_exactness.py holds the model to a reference copy, bit for bit).

Times crossing the API are integer nanoseconds of loop time; inside, the physics runs in float
seconds. A flow's end is reported rounded up to the next nanosecond (SPEC 9), after allowing for
floating error far below a nanosecond (`_NS_TOL_*`), so a transfer that takes exactly one second
on paper ends at exactly 1,000,000,000 ns, and the flow is complete when that instant is reached.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field

__all__ = ["FlowNetwork", "ceil_ns"]

# A flow whose remaining bytes are within this of zero is done, so floating error never keeps a
# sliver of a flow alive for one more event.
_REL_EPS = 1e-9
_ABS_EPS = 1e-6
# Hysteresis for leaving the capped set: without it, rounding could bounce a node whose share
# equals the water level between the two sets forever.
_LEVEL_TOL = 1e-11
# Safety valve: past this many moves beyond twice the busy nodes, the incremental water-fill is
# redone by sorting. Not expected to trigger; tests force it so the path stays correct.
_REBALANCE_SLACK = 16
# Lazily invalidated heap entries are swept once a heap outgrows its live entries by this much.
_COMPACT_FACTOR = 4
_COMPACT_MIN = 256
# Floating error allowed when rounding a finish time up to the nanosecond: finish times carry a
# relative error of a few 1e-16, so only a finish more than this past a whole nanosecond is
# rounded up to the next one.
_NS_TOL_REL = 1e-15
_NS_TOL_ABS = 1e-6
_NS = 1_000_000_000


def _nonneg(x: float) -> float:
    """max(x, 0.0) without the call to max, to the bit (-0.0 and NaN pass through as max has)."""
    return x if not x < 0.0 else 0.0


def ceil_ns(seconds: float) -> int:
    """A finish time in seconds as loop nanoseconds, rounded up (within floating error)."""
    ns = seconds * _NS
    return math.ceil(ns - (abs(ns) * _NS_TOL_REL + _NS_TOL_ABS))


# (finish time or water-clock key, flow_id, node version, node index)
_DueEntry = tuple[float, int, int, int]
# (share or -share, node index, node version)
_ShareEntry = tuple[float, int, int]
# The earliest unfinished completion: (finish time in seconds, flow_id, node), or None for none.
_Top = tuple[float, int, "_Node"] | None
# _Top not worked out since the last change.
_STALE: _Top = (math.nan, -1, None)  # type: ignore[assignment]


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__, and one
# _Flow is made per download. Nothing assigns to a _Flow after it is made.
@dataclass(slots=True, eq=False)
class _Flow:
    seq: int  # unique per start, so a reused flow_id never matches a stale heap entry
    node: _Node
    size: int
    start_v: float  # the node's virtual clock when the flow started
    eps: float


@dataclass(slots=True, eq=False)
class _Node:
    name: str
    idx: int
    capacity: float
    count: int = 0
    share: float = math.inf
    rate: float = math.inf  # meaningful only while not held at the water level
    clock: float = 0.0  # virtual clock (bytes served to each flow) as of clock_time
    clock_time: float = 0.0
    offset: float = 0.0  # while at the level: clock == water clock + offset
    level: bool = False
    capped: bool = False
    version: int = 0  # bumped on every change; heap entries with an older one are stale
    heap: list[tuple[float, int, int]] = field(default_factory=list)  # (finish_v, id, seq)


@dataclass(slots=True, eq=False)
class _DueQueue:
    """Due entries, least first: a heap, plus a run of entries that arrived in ascending order.

    Nodes that start or move together push entries in ascending order (equal keys, rising flow
    ids; or later starts, later keys), and the run serves those in O(1) where a heap of
    thousands pays a logarithm of tuple comparisons on every pop. Stale entries are dropped when
    they reach a front, as with a lazily invalidated heap.
    """

    heap: list[_DueEntry] = field(default_factory=list)
    run: deque[_DueEntry] = field(default_factory=deque)

    def push(self, entry: _DueEntry) -> None:
        run = self.run
        if not run or entry > run[-1]:
            run.append(entry)
        else:
            heapq.heappush(self.heap, entry)

    def first(self, nodes: list[_Node]) -> _DueEntry | None:
        """The least live entry (current node version), dropping stale ones on the way."""
        heap = self.heap
        while heap:
            top = heap[0]
            if nodes[top[3]].version == top[2]:
                break
            heapq.heappop(heap)
        run = self.run
        while run:
            front = run[0]
            if nodes[front[3]].version == front[2]:
                if heap and heap[0] < front:
                    return heap[0]
                return front
            run.popleft()
        return heap[0] if heap else None

    def compact(self, nodes: list[_Node]) -> None:
        self.heap = [e for e in self.heap if nodes[e[3]].version == e[2]]
        heapq.heapify(self.heap)
        self.run = deque(e for e in self.run if nodes[e[3]].version == e[2])


def _check_bandwidth(value: float, what: str) -> None:
    if not value > 0:
        raise ValueError(f"{what} must be > 0 bytes/s (math.inf for unlimited), got {value!r}")


class FlowNetwork:
    """Download flows sharing node downlinks and one registry egress, max-min fairly.

    Times passed to start/cancel/complete_due must never go backwards. A start or cancel first
    completes every flow that finished by its `now` (at that flow's own finish time), so rates
    are never applied past a finish; those flows are reported by the next complete_due.
    """

    __slots__ = (
        "_busy",
        "_cap_ops",
        "_cap_sum",
        "_capped",
        "_due",
        "_flows",
        "_high",
        "_level",
        "_level_due",
        "_level_flows",
        "_level_nodes",
        "_limited",
        "_low",
        "_node_list",
        "_nodes",
        "_now",
        "_pending",
        "_pending_min",
        "_registry",
        "_seq",
        "_top",
        "_water",
        "_water_time",
    )

    def __init__(self, registry_bandwidth: float = math.inf) -> None:
        _check_bandwidth(registry_bandwidth, "registry_bandwidth")
        self._registry = float(registry_bandwidth)
        self._limited = self._registry != math.inf
        self._nodes: dict[str, _Node] = {}
        self._node_list: list[_Node] = []
        self._flows: dict[int, _Flow] = {}
        # Finished but not yet returned by complete_due (finished before a start/cancel's `now`).
        self._pending: dict[int, float] = {}
        # The earliest (time, id) in _pending, kept so next_completion stays O(1) when many
        # flows finish together.
        self._pending_min: tuple[float, int] | None = None
        self._seq = 0
        self._now = -math.inf
        self._busy = 0  # nodes with at least one flow
        self._due = _DueQueue()  # nodes at their own rate, keyed by finish time
        self._level_due = _DueQueue()  # nodes at the level, keyed by water clock
        self._low: list[_ShareEntry] = []  # nodes at the level, min-heap by share
        self._high: list[_ShareEntry] = []  # capped nodes, max-heap by share
        self._capped: dict[int, _Node] = {}
        self._cap_sum = 0.0
        self._cap_ops = 0
        self._level = math.inf
        self._level_flows = 0
        self._level_nodes = 0
        self._water = 0.0  # bytes served per flow at the level, as of _water_time
        self._water_time = 0.0
        # The last _peek's answer, kept until the next change: a start's settle and then
        # next_completion would otherwise work out the same top twice.
        self._top: _Top = None

    # -- public API --------------------------------------------------------------------------

    def set_node_bandwidth(self, node: str, bandwidth: float) -> None:
        """Set a node's downlink; with flows active it takes effect at the latest `now` seen."""
        _check_bandwidth(bandwidth, "bandwidth")
        n = self._node(node)
        if n.count:
            now = self._now
            self._settle_s(now, ceil_ns(now))
            if n.count:
                self._begin_change(n, now)
                n.capacity = float(bandwidth)
                self._end_change(n, now)
                return
        n.capacity = float(bandwidth)

    def start(self, flow_id: int, node: str, size: int, now_ns: int) -> None:
        if flow_id in self._flows or flow_id in self._pending:
            raise ValueError(f"flow {flow_id} already exists")
        if size < 0:
            raise ValueError(f"flow size must be >= 0 bytes, got {size}")
        now = now_ns / _NS
        self._settle_s(now, now_ns)
        n = self._nodes.get(node) or self._node(node)
        self._begin_change(n, now)
        self._seq += 1
        clock = n.clock
        self._flows[flow_id] = _Flow(self._seq, n, size, clock, _REL_EPS * size + _ABS_EPS)
        heapq.heappush(n.heap, (clock + size, flow_id, self._seq))
        n.count += 1
        self._end_change(n, now)

    def cancel(self, flow_id: int, now_ns: int) -> None:
        """Remove a flow without completing it; a no-op if it already finished unreported."""
        if flow_id not in self._flows and flow_id not in self._pending:
            raise KeyError(flow_id)
        now = self._settle(now_ns)
        flow = self._flows.get(flow_id)
        if flow is None:
            return
        n = flow.node
        self._begin_change(n, now)
        del self._flows[flow_id]
        n.count -= 1
        self._end_change(n, now)

    def next_completion(self) -> tuple[int, int] | None:
        """Earliest (finish ns, flow_id) not yet reported, finished or not; lowest id on ties."""
        if self._pending_min is not None:
            when, fid = self._pending_min
            return ceil_ns(when), fid
        top = self._top
        if top is _STALE:
            top = self._peek()
        if top is None:
            return None
        when, fid, _ = top
        return ceil_ns(max(when, self._now)), fid

    def complete_due(self, now_ns: int) -> list[int]:
        """Advance to `now_ns`; remove and return flows finished by then, by (time, flow_id)."""
        now = now_ns / _NS
        if now >= self._now:
            self._settle(now_ns)
            pending = self._pending
            if not pending:
                return []
            self._pending = {}
            self._pending_min = None
            due = sorted(zip(pending.values(), pending, strict=True))
        else:
            # Nothing can be advanced backwards; only report what had already finished by `now`.
            self._check_time(now, allow_past=True)
            due = sorted(
                (when, fid) for fid, when in self._pending.items() if ceil_ns(when) <= now_ns
            )
            for _, fid in due:
                del self._pending[fid]
            self._pending_min = min(((w, f) for f, w in self._pending.items()), default=None)
        return [fid for _, fid in due]

    def rate(self, flow_id: int) -> float:
        node = self._flows[flow_id].node
        return self._level if node.level else node.rate

    def remaining(self, flow_id: int, now_ns: int) -> float:
        flow = self._flows[flow_id]
        left = self._remaining_at(flow, now_ns / _NS)
        return min(max(left, 0.0), float(flow.size))

    def progress(self, flow_id: int, now_ns: int) -> tuple[float, int]:
        size = self._flows[flow_id].size
        return size - self.remaining(flow_id, now_ns), size

    def __len__(self) -> int:
        return len(self._flows)

    # -- time and completions ----------------------------------------------------------------

    def _check_time(self, now: float, *, allow_past: bool = False) -> None:
        if not math.isfinite(now):
            raise ValueError(f"time must be finite, got {now!r}")
        if not allow_past and now < self._now:
            raise ValueError(f"time went backwards: {now!r} < {self._now!r}")

    def _settle(self, now_ns: int) -> float:
        """Fire every completion due by `now_ns`, each at its own time, then move there."""
        now = now_ns / _NS
        self._settle_s(now, now_ns)
        return now

    def _settle_s(self, now: float, now_ns: int) -> None:
        if not (self._now <= now < math.inf and now > -math.inf):
            self._check_time(now)
        top = self._top
        if top is _STALE:
            top = self._peek()
        while top is not None:
            when, _, node = top
            ns = when * _NS  # ceil_ns(when), inline: this runs once per start and per finish
            if math.ceil(ns - (abs(ns) * _NS_TOL_REL + _NS_TOL_ABS)) > now_ns:
                break
            # Due by `now_ns` once rounded up; a finish a hair past `now` (floating error
            # below the rounding tolerance) completes at `now`.
            at = self._now
            if when > at:
                at = self._now = min(when, now)
            self._fire(node, at)
            top = self._peek()
        self._now = now

    def _peek(self) -> _Top:
        nodes = self._node_list
        due = self._due.first(nodes)
        level_due = self._level_due.first(nodes)
        if level_due is None:
            if due is None:
                self._top = None
                return None
            when, fid, _, idx = due
        else:
            key, fid, _, idx = level_due
            when = self._level_time(key)
            if due is not None and (due[0], due[1]) < (when, fid):
                when, fid, _, idx = due
        top = self._top = (when, fid, nodes[idx])
        return top

    def _level_time(self, key: float) -> float:
        level = self._level
        if not level > 0:
            return math.inf
        ahead = key - self._water
        return self._water_time + (ahead if not ahead < 0.0 else 0.0) / level

    def _fire(self, node: _Node, at: float) -> None:
        """Complete the node's earliest flow at `at`, plus any others ending by the same ns."""
        rate = self._level if node.level else node.rate
        everything = rate == math.inf
        self._begin_change(node, at)
        flows = self._flows
        pending = self._pending
        heap = node.heap
        clock = node.clock
        forced = True
        while heap:
            _, fid, seq = heap[0]
            flow = flows.get(fid)
            if flow is None or flow.seq != seq:
                heapq.heappop(heap)
                continue
            if not (forced or everything):
                # Another flow ends with this one only if it ends by the same nanosecond.
                left = flow.size - (clock - flow.start_v)
                if (
                    left > flow.eps
                    or not rate > 0
                    or ceil_ns(at + _nonneg(left) / rate) > ceil_ns(at)
                ):
                    break
            heapq.heappop(heap)
            del flows[fid]
            pending[fid] = at
            if self._pending_min is None or (at, fid) < self._pending_min:
                self._pending_min = (at, fid)
            node.count -= 1
            forced = False
        self._end_change(node, at)

    def _remaining_at(self, flow: _Flow, at: float) -> float:
        node = flow.node
        if node.level:
            clock = self._water + self._level * (at - self._water_time) + node.offset
        elif node.rate == math.inf:
            return 0.0
        else:
            clock = node.clock + node.rate * (at - node.clock_time)
        return flow.size - (clock - flow.start_v)

    # -- node changes ------------------------------------------------------------------------

    def _node(self, name: str) -> _Node:
        node = self._nodes.get(name)
        if node is None:
            node = _Node(name, len(self._node_list), math.inf)
            self._nodes[name] = node
            self._node_list.append(node)
        return node

    def _begin_change(self, node: _Node, now: float) -> None:
        """Bring the node's clock to `now` at its old rate and take it out of the sharing."""
        if node.count:
            self._busy -= 1
        if self._limited:
            if self._level_nodes:
                self._water += self._level * (now - self._water_time)
            self._water_time = now
        # _materialize and _detach, inline: this runs twice per download.
        if node.level:
            node.clock = self._water + node.offset
            node.level = False
            self._level_flows -= node.count
            self._level_nodes -= 1
        else:
            if node.count and node.rate != math.inf:
                node.clock += node.rate * (now - node.clock_time)
            if node.capped:
                self._detach(node)
        node.clock_time = now
        node.version += 1
        self._top = _STALE

    def _end_change(self, node: _Node, now: float) -> None:
        """Put the node back into the sharing with its new flows or capacity; re-share."""
        count = node.count
        if not count:
            # An idle node restarts its virtual clock at zero so it never grows without bound.
            node.heap.clear()
            node.clock = 0.0
            node.share = math.inf
            if self._limited:
                self._rebalance(now, None)
            return
        self._busy += 1
        share = node.capacity / count
        node.share = share
        if self._limited:
            self._attach(node, to_level=not share < self._level)
            self._rebalance(now, node)
        else:
            node.rate = share
            self._push(node)

    def _materialize(self, node: _Node, now: float) -> None:
        if node.level:
            node.clock = self._water + node.offset
        elif node.count and node.rate != math.inf:
            node.clock += node.rate * (now - node.clock_time)
        node.clock_time = now

    def _detach(self, node: _Node) -> None:
        if node.level:
            node.level = False
            self._level_flows -= node.count
            self._level_nodes -= 1
        elif node.capped:
            node.capped = False
            del self._capped[node.idx]
            if self._capped:
                self._cap_sum -= node.capacity
                self._cap_ops += 1
            else:
                self._cap_sum = 0.0
                self._cap_ops = 0

    def _attach(self, node: _Node, *, to_level: bool) -> None:
        if to_level:
            node.level = True
            self._level_flows += node.count
            self._level_nodes += 1
            node.offset = node.clock - self._water
            shares = self._low
            heapq.heappush(shares, (node.share, node.idx, node.version))
        else:
            node.capped = True
            node.rate = node.share
            self._capped[node.idx] = node
            self._cap_sum += node.capacity
            self._cap_ops += 1
            shares = self._high
            heapq.heappush(shares, (-node.share, node.idx, node.version))
        if len(shares) > _COMPACT_FACTOR * self._busy + _COMPACT_MIN:
            nodes = self._node_list
            shares[:] = [e for e in shares if nodes[e[1]].version == e[2]]
            heapq.heapify(shares)

    def _move(self, node: _Node, now: float, *, to_level: bool) -> None:
        self._materialize(node, now)
        self._detach(node)
        node.version += 1
        self._attach(node, to_level=to_level)

    def _push(self, node: _Node) -> None:
        """Queue the node's next completion; its clock must be current."""
        heap = node.heap
        flows = self._flows
        while True:
            _, fid, seq = heap[0]
            flow = flows.get(fid)
            if flow is not None and flow.seq == seq:
                break
            heapq.heappop(heap)
        left = flow.size - (node.clock - flow.start_v)
        if node.level:
            water = self._water
            key = water + left if left > flow.eps else water
            queue = self._level_due
            queue.push((key, fid, node.version, node.idx))
        else:
            rate = node.rate
            when = node.clock_time
            if rate != math.inf and left > flow.eps:
                when += left / rate
            queue = self._due
            queue.push((when, fid, node.version, node.idx))
        if len(queue.heap) + len(queue.run) > _COMPACT_FACTOR * self._busy + _COMPACT_MIN:
            queue.compact(self._node_list)

    # -- water-filling under a registry limit ------------------------------------------------

    def _level_value(self) -> float:
        capped = self._capped
        if self._cap_ops > 2 * len(capped) + 32:
            # Refresh the running sum exactly so add/remove rounding never drifts.
            self._cap_sum = math.fsum(n.capacity for n in capped.values())
            self._cap_ops = 0
        residual = self._registry - self._cap_sum
        if self._level_flows:
            return residual / self._level_flows
        return math.inf if residual >= 0 else -math.inf

    def _rebalance(self, now: float, changed: _Node | None) -> None:
        """Move nodes between capped and level until no node's share straddles the level.

        Each move raises the level, so this ends; normally only nodes whose share lies between
        the old and new level move.
        """
        low = self._low
        high = self._high
        level = self._level_value()
        # The heaps' tops may be stale, but no current entry lies beyond them: a top on the
        # right side of the level says every node is, without clearing the stale ones first.
        if (
            (low and low[0][0] < level)
            or (high and -high[0][0] > level * (1.0 + _LEVEL_TOL))
            or 2 * self._busy + _REBALANCE_SLACK < 0  # tests force the sorting fallback
        ):
            # Some node's share straddles the new level: the rare path.
            self._moves(now, changed)
            return
        self._level = level
        if not self._level_nodes:
            self._water = 0.0
            self._water_time = now
        if changed is not None:
            self._push(changed)

    def _moves(self, now: float, changed: _Node | None) -> None:
        moved: dict[int, _Node] = {}
        if changed is not None:
            moved[changed.idx] = changed
        nodes = self._node_list
        low = self._low
        high = self._high
        # Mostly stale share heaps are swept here in one pass rather than popped entry by entry:
        # at the end of a wave of finishes nearly every entry is stale.
        for shares, live in ((low, self._level_nodes), (high, len(self._capped))):
            if len(shares) > 2 * live + _COMPACT_MIN:
                shares[:] = [e for e in shares if nodes[e[1]].version == e[2]]
                heapq.heapify(shares)
        budget = 2 * self._busy + _REBALANCE_SLACK
        moves = 0
        while True:
            if moves > budget:
                self._full_rebalance(now, moved)
                break
            level = self._level_value()
            while low and nodes[low[0][1]].version != low[0][2]:
                heapq.heappop(low)
            if low and low[0][0] < level:
                node = nodes[low[0][1]]
                self._move(node, now, to_level=False)
                moved[node.idx] = node
                moves += 1
                continue
            while high and nodes[high[0][1]].version != high[0][2]:
                heapq.heappop(high)
            if high and -high[0][0] > level * (1.0 + _LEVEL_TOL):
                node = nodes[high[0][1]]
                self._move(node, now, to_level=True)
                moved[node.idx] = node
                moves += 1
                continue
            break
        self._level = self._level_value()
        if not self._level_nodes:
            self._water = 0.0
            self._water_time = now
        for node in moved.values():
            self._push(node)

    def _full_rebalance(self, now: float, moved: dict[int, _Node]) -> None:
        """Water-fill from scratch: nodes in order of share, capped while below the level."""
        active = sorted((n for n in self._node_list if n.count), key=lambda n: (n.share, n.idx))
        residual = self._registry
        left = sum(n.count for n in active)
        cut = 0
        for n in active:
            if not n.share <= residual / left:
                break
            residual -= n.capacity
            left -= n.count
            cut += 1
        for i, n in enumerate(active):
            to_level = i >= cut
            if n.level != to_level:
                self._move(n, now, to_level=to_level)
                moved[n.idx] = n
        self._cap_sum = math.fsum(n.capacity for n in self._capped.values())
        self._cap_ops = 0
