"""Image GC periods on a shared ticker: one timer per instant, the same order as a timer each.

Each program below runs twice on an event core, once with a `GCTicker` and once with every node
on a timer of its own, and must log the same thing: which node's period ran when, among other
timers due at the same nanosecond.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubesim_images.clock import run_virtual, sleep_ns
from kubesim_images.events import EventLog
from kubesim_images.image_gc import GCPolicy
from kubesim_images.nodegc import GCTicker, NodeImageGC
from kubesim_images.scheduler import EventCore, LoopScheduler, Scheduler, Timer
from kubesim_images.store import ImageRecord, ImageStore, Layer

S = 1_000_000_000
PERIOD = 300 * S


class Counting:
    """A scheduler (an event core by default) that counts the timers set on it."""

    def __init__(self, inner: Scheduler | None = None) -> None:
        self.core = EventCore()
        self.inner: Scheduler = self.core if inner is None else inner
        self.timers = 0

    @property
    def now_ns(self) -> int:
        return self.inner.now_ns

    def call_at(self, when: int, callback: Callable[..., object], *args: Any) -> Timer:
        self.timers += 1
        return self.inner.call_at(when, callback, *args)

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        self.inner.call_soon(callback, *args)


class World:
    def __init__(self, *, shared: bool, scheduler: Scheduler | None = None) -> None:
        self.scheduler = Counting(scheduler)
        self.ticker = GCTicker(self.scheduler) if shared else None
        self.log: list[tuple[int, str]] = []
        self.hooks: dict[tuple[str, int], Callable[[], None]] = {}

    def node(self, name: str) -> NodeImageGC:
        def in_use() -> frozenset[str]:
            now = self.scheduler.now_ns
            if now:  # the sweep at the start is not a period
                self.log.append((now // S, name))
            hook = self.hooks.get((name, now // S))
            if hook is not None:
                hook()
            return frozenset()

        return NodeImageGC(
            name,
            ImageStore(capacity=1000),
            GCPolicy(),
            EventLog(),
            in_use,
            self.scheduler,
            self.ticker,
        )

    def other(self, when: int, name: str) -> None:
        self.scheduler.call_at(when, lambda: self.log.append((when // S, name)))

    def run_until(self, when: int) -> None:
        self.scheduler.call_at(when, self.scheduler.core.stop_after_instant)
        self.scheduler.core.run()


def both(program: Callable[[World], None]) -> tuple[list[tuple[int, str]], int, int]:
    """The log (same either way) and the timers set with and without the ticker."""
    shared, alone = World(shared=True), World(shared=False)
    program(shared)
    program(alone)
    assert shared.log == alone.log
    return shared.log, shared.scheduler.timers, alone.scheduler.timers


def start_together(world: World, names: str) -> list[NodeImageGC]:
    gcs = [world.node(name) for name in names]
    if world.ticker is None:
        for gc in gcs:
            gc.start()
    else:
        with world.ticker.together():
            for gc in gcs:
                gc.start()
    return gcs


def test_nodes_started_together_run_in_order_among_other_timers_on_one_timer_each_instant():
    def program(world: World) -> None:
        world.other(PERIOD, "before")
        start_together(world, "abc")
        world.other(PERIOD, "after")
        world.other(2 * PERIOD, "later")
        world.run_until(2 * PERIOD)

    log, shared, alone = both(program)
    assert log == [
        (300, "before"),
        (300, "a"),
        (300, "b"),
        (300, "c"),
        (300, "after"),
        (600, "later"),  # set before the 300 s periods set theirs for 600 s
        (600, "a"),
        (600, "b"),
        (600, "c"),
    ]
    # 3 others and the stop; 3 nodes x 3 periods (300, 600, 900) alone, 3 batches shared.
    assert (shared, alone) == (4 + 3, 4 + 9)


def test_nodes_started_apart_keep_a_timer_each_and_their_order():
    def program(world: World) -> None:
        a, b = world.node("a"), world.node("b")
        a.start()
        world.other(PERIOD, "between")
        b.start()
        world.run_until(2 * PERIOD)

    log, _, _ = both(program)
    assert log == [(300, "a"), (300, "between"), (300, "b"), (600, "a"), (600, "b")]


def test_a_node_halted_by_an_earlier_one_in_its_batch_skips_its_period():
    # As a timer cancelled in the turn it is due is skipped, on asyncio's loop (the daemon's,
    # where nodes are halted) and on the event core alike.
    expected = [(300, "a"), (300, "b"), (300, "c"), (600, "a"), (600, "b"), (900, "a"), (900, "b")]

    def program(world: World) -> None:
        _, _, c = start_together(world, "abc")
        world.hooks["a", 600] = c.halt

    shared = World(shared=True)
    program(shared)
    shared.run_until(3 * PERIOD)

    async def on_a_loop() -> list[tuple[int, str]]:
        alone = World(shared=False, scheduler=LoopScheduler())
        program(alone)
        await sleep_ns(3 * PERIOD + 1)
        return alone.log

    assert shared.log == run_virtual(on_a_loop()) == expected


def test_halting_every_node_of_a_batch_cancels_its_timer():
    def program(world: World) -> None:
        gcs = start_together(world, "ab")
        world.scheduler.call_at(PERIOD + S, lambda: [gc.halt() for gc in gcs])
        world.scheduler.core.run()  # nothing left once both are halted: time stops there

    shared, alone = World(shared=True), World(shared=False)
    program(shared)
    program(alone)
    assert shared.log == alone.log == [(300, "a"), (300, "b")]
    assert shared.scheduler.now_ns == alone.scheduler.now_ns == PERIOD + S


class TestQuietPeriods:
    """A period that finds nothing changed skips the sweep, and sees every change it is told
    of: new images, images gone, other images in use."""

    def _gc(self, core: EventCore, store: ImageStore, in_use: Callable[[], frozenset[str]]):
        gc = NodeImageGC(
            "node-0", store, GCPolicy(), EventLog(), in_use, core, told_of_changes=True
        )
        store.listener = Told(gc)
        return gc

    def test_unchanged_periods_mark_the_images_in_use_used_and_changes_are_swept(self):
        core = EventCore()
        store = ImageStore(capacity=10_000)
        store.add(ImageRecord("a", (Layer("sha256:" + "1" * 64, 10),)), None, 0)
        store.add(ImageRecord("b", (Layer("sha256:" + "2" * 64, 20),)), None, 0)
        used = {"now": frozenset({"a"})}
        gc = self._gc(core, store, lambda: used["now"])
        gc.start()
        records = gc.manager.records

        def at(when: int, action: Callable[[], object]) -> None:
            core.call_at(when, action)

        at(
            PERIOD + S,
            lambda: store.add(ImageRecord("c", (Layer("sha256:" + "3" * 64, 5),)), None, 0),
        )
        at(3 * PERIOD + S, lambda: used.update(now=frozenset({"b"})))
        at(4 * PERIOD + S, lambda: store.remove("c"))
        at(5 * PERIOD + S, core.stop_after_instant)
        core.run()
        assert records["a"].last_used == 3 * PERIOD  # in use until the pods changed
        assert records["b"].last_used == 5 * PERIOD
        assert "c" not in records  # gone at 4 * PERIOD + S, forgotten at the next sweep
        assert [sample[1] for sample in gc.disk] == [30, 35, 35, 35, 30]
        assert gc.runs == 5

    def test_a_new_image_is_first_detected_at_the_next_period(self):
        core = EventCore()
        store = ImageStore(capacity=10_000)
        none: frozenset[str] = frozenset()
        gc = self._gc(core, store, lambda: none)
        gc.start()
        core.call_at(
            2 * PERIOD + S,
            lambda: store.add(ImageRecord("n", (Layer("sha256:" + "4" * 64, 5),)), None, 0),
        )
        core.call_at(4 * PERIOD, core.stop_after_instant)
        core.run()
        assert gc.manager.records["n"].first_detected == 3 * PERIOD


class Told:
    """The store's listener a node installs: image GC is told of every change."""

    def __init__(self, gc: NodeImageGC) -> None:
        self.gc = gc

    def image_changed(self, record: ImageRecord) -> None:
        self.gc.image_stored(record.id, pinned=record.pinned)

    def image_removed(self, image_id: str) -> None:
        self.gc.images_changed()


def test_an_image_pinned_by_a_new_name_is_seen_pinned_at_the_next_period():
    core = EventCore()
    store = ImageStore(capacity=10_000, pinned=["registry.k8s.io/pause:3.10"])
    record = ImageRecord("p", (Layer("sha256:" + "5" * 64, 5),), repo_tags=["example.com/p:v1"])
    store.add(record, None, 0)
    none: frozenset[str] = frozenset()
    gc = NodeImageGC(
        "node-0", store, GCPolicy(), EventLog(), lambda: none, core, told_of_changes=True
    )
    store.listener = Told(gc)
    gc.start()
    renamed = ImageRecord("p", record.layers, repo_tags=["registry.k8s.io/pause:3.10"])
    core.call_at(PERIOD + S, lambda: store.add(renamed, None, 0))
    core.call_at(2 * PERIOD, core.stop_after_instant)
    core.run()
    assert gc.manager.records["p"].pinned
