"""The watch hub: every open watch ends on shutdown, whatever its client does."""

from __future__ import annotations

import asyncio
from typing import Any

from kubesim_images.daemon.watches import STOP, Watch, WatchHub


class StuckConnection:
    """A transport whose writes block until it is aborted, like a client that stopped reading."""

    def __init__(self) -> None:
        self.aborted = asyncio.Event()

    def abort(self) -> None:
        self.aborted.set()

    def is_closing(self) -> bool:
        return self.aborted.is_set()

    async def write(self, _data: Any) -> None:
        await self.aborted.wait()
        raise ConnectionResetError("aborted")


async def reader(hub: WatchHub, watch: Watch, seen: list[str]) -> None:
    """A watch handler's loop: read changes until the stop marker."""
    try:
        while True:
            change, _ = await watch.queue.get()
            if change == STOP:
                return
            seen.append(change)
    finally:
        hub.finish(watch)


async def stuck_writer(hub: WatchHub, watch: Watch, connection: StuckConnection) -> None:
    """A handler blocked in a write that only an aborted connection ends."""
    try:
        await connection.write(b"{}")
    except ConnectionResetError:
        pass
    finally:
        hub.finish(watch)


async def test_close_ends_a_watch_waiting_for_changes() -> None:
    hub = WatchHub()
    watch = hub.open("pods", "namespace", None)
    seen: list[str] = []
    task = asyncio.create_task(reader(hub, watch, seen))
    watch.offer("ADDED", {})
    await asyncio.sleep(0)
    drained = await hub.close(grace=30)
    await task
    assert (drained.ended, drained.aborted) == (1, 0)
    assert seen == ["ADDED"]
    assert hub.counts() == {}


async def test_close_aborts_the_connection_of_a_client_that_stopped_reading() -> None:
    hub = WatchHub()
    connection = StuckConnection()
    watch = hub.open("pods", "cluster", connection)  # type: ignore[arg-type]
    task = asyncio.create_task(stuck_writer(hub, watch, connection))
    await asyncio.sleep(0)
    drained = await hub.close(grace=0.01)
    assert connection.aborted.is_set()
    await task  # the abort unblocked its write
    assert (drained.ended, drained.aborted) == (0, 1)


async def test_a_watch_opened_once_closing_has_begun_ends_at_once() -> None:
    hub = WatchHub()
    await hub.close(grace=0)
    watch = hub.open("pods", "namespace", None)
    assert watch.ended
    assert watch.finished.is_set()
    assert watch.queue.get_nowait()[0] == STOP
    assert hub.counts() == {}  # nothing left for a later close to wait on


async def test_a_watch_opened_during_the_grace_period_is_not_waited_for() -> None:
    hub = WatchHub()
    connection = StuckConnection()
    stuck = hub.open("pods", "cluster", connection)  # type: ignore[arg-type]
    task = asyncio.create_task(stuck_writer(hub, stuck, connection))
    closing = asyncio.create_task(hub.close(grace=0.05))
    await asyncio.sleep(0)
    late = hub.open("events", "cluster", None)
    assert late.ended
    drained = await closing
    await task
    assert (drained.ended, drained.aborted) == (0, 1)


async def test_a_subscriber_that_falls_behind_is_ended_not_grown() -> None:
    hub = WatchHub(backlog=3)
    watch = hub.open("pods", "namespace", None)
    for _ in range(3):
        watch.offer("MODIFIED", {})
    assert not watch.ended
    watch.offer("MODIFIED", {})  # a fourth change would leave a gap: end the watch instead
    assert watch.ended
    assert watch.queue.qsize() == 1
    assert watch.queue.get_nowait()[0] == STOP


async def test_counts_by_resource_and_scope() -> None:
    hub = WatchHub()
    hub.open("pods", "namespace", None)
    hub.open("pods", "namespace", None)
    finished = hub.open("pods", "cluster", None)
    hub.finish(finished)
    hub.open("events", "cluster", None)
    assert hub.counts() == {("pods", "namespace"): 2, ("events", "cluster"): 1}


async def test_a_subscriber_that_stops_reading_is_dropped_after_its_backlog() -> None:
    """Issue 7: a watch client that stops reading holds neither memory nor its connection."""
    hub = WatchHub(backlog=3)
    connection = StuckConnection()
    watch = hub.open("pods", "cluster", connection)  # type: ignore[arg-type]
    task = asyncio.create_task(stuck_writer(hub, watch, connection))
    for _ in range(10):
        watch.offer("MODIFIED", {})
    assert watch.ended
    assert watch.queue.qsize() == 1  # only the stop marker: the backlog was dropped
    await asyncio.wait_for(connection.aborted.wait(), timeout=30)
    await task
    assert hub.counts() == {}


class Connection:
    """A transport that a client may close (its `is_closing`, as asyncio's transports)."""

    def __init__(self) -> None:
        self.closed = False

    def is_closing(self) -> bool:
        return self.closed

    def abort(self) -> None:
        self.closed = True


async def test_a_watch_whose_client_disconnected_is_ended_and_freed() -> None:
    """A watch that matches nothing never writes, so only the liveness check ends it."""
    hub = WatchHub(liveness_interval=0.01)
    gone, alive = Connection(), Connection()
    left = hub.open("pods", "namespace", gone)  # type: ignore[arg-type]
    stays = hub.open("pods", "namespace", alive)  # type: ignore[arg-type]
    left_task = asyncio.create_task(reader(hub, left, []))
    stays_task = asyncio.create_task(reader(hub, stays, []))
    gone.closed = True
    await asyncio.wait_for(left_task, timeout=10)  # bounds a hang only
    assert hub.counts() == {("pods", "namespace"): 1}
    assert not stays_task.done()
    await hub.close(grace=1)
    await stays_task
    assert hub.counts() == {}
