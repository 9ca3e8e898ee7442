"""Open watch streams, and how every one of them ends when the daemon stops.

A watch is a request that never finishes by itself, so aiohttp's drain would wait its whole
timeout for each. The hub is the one place that knows them all, and it closes the two gaps a
shutdown can fall into:
- a watch registers before its response headers are sent, and registration is refused once
  closing has begun: a watch a client can see is always one `close` will end, and a watch
  request that arrives on a kept-alive connection during the drain ends at once;
- `close` ends streams in two steps: a stop marker that a writer sees at its next queue read,
  then, after a short grace, the connection of any writer still stuck is aborted (a client that
  stopped reading blocks its writes forever, whatever we queue).
Each watch's queue is bounded: a subscriber that falls `backlog` changes behind is ended (the
client lists again), never allowed to grow memory without bound; if its writer is still stuck
on a client that stopped reading STUCK_GRACE seconds later, its connection is aborted, so it
holds no connection slot or buffer either.

A watch that asked for bookmarks (`allowWatchBookmarks=true`) gets a BOOKMARK event with the
current resourceVersion every `bookmark_interval` seconds (a minute, the apiserver cacher's
bookmarkFrequency), the last one 2 s before the watch's deadline so that its client still reads
it (`nextBookmarkTime`): a client that resumes from it lists nothing again. The interval is the
hub's, so tests shorten it.

A client that disconnects is noticed too: aiohttp does not cancel a handler whose client went
away, and a watch that matches nothing never writes (the write is what would fail), so it would
stay subscribed until a matching change came. While watches are open, one liveness task ends
every watch whose connection has closed, each LIVENESS_INTERVAL seconds: the subscriber is
freed and `apiserver_longrunning_requests` drops, as the apiserver's does when its request
context is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from kubesim_images.logging import get_logger
from kubesim_images.tasks import create_guarded_task, stop_task

_log = get_logger()

Change = tuple[str, dict[str, Any]]
STOP = "__stop__"
DEFAULT_BACKLOG = 1000
STUCK_GRACE = 1.0
# How soon a closed connection's watch is ended: one pass over the open watches (a flag read
# each) per second costs nothing, and a second is well inside any client's reconnect.
LIVENESS_INTERVAL = 1.0
BOOKMARK_INTERVAL = 60.0
BOOKMARK_BEFORE_DEADLINE = 2.0


def next_bookmark(now: float, interval: float, deadline: float) -> float | None:
    """When a watch's next bookmark is due: `interval` from now, but no later than 2 s before
    its deadline; None when that moment has passed (no bookmark left to send)."""
    due = min(now + interval, deadline - BOOKMARK_BEFORE_DEADLINE)
    return due if due >= now else None


@dataclass(eq=False, slots=True)
class Watch:
    """One open stream: its pending changes, its connection, and whether it has finished."""

    resource: str
    scope: str
    queue: asyncio.Queue[Change]
    transport: asyncio.Transport | None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False
    # A long-running GET of a subresource held open like a watch (`pods/log` followed).
    subresource: str = ""

    def offer(self, change: str, obj: dict[str, Any]) -> None:
        """Queue a change; a subscriber this far behind is ended instead (it will re-list)."""
        if self.ended:
            return  # its writer stops at the marker; nothing after it would be read
        if self.queue.full():
            self.end()
            if self.transport is not None:
                loop = asyncio.get_running_loop()
                loop.call_later(STUCK_GRACE, self._abort_if_stuck)
        else:
            self.queue.put_nowait((change, obj))

    def _abort_if_stuck(self) -> None:
        if not self.finished.is_set() and self.transport is not None:
            _log.info("watch_aborted", resource=self.resource, reason="client stopped reading")
            self.transport.abort()

    def end(self) -> None:
        """Drop what is pending and make the stop marker the next thing the writer reads."""
        self.ended = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait((STOP, {}))


@dataclass(frozen=True, slots=True)
class Drained:
    """How `WatchHub.close` ended the open watches."""

    ended: int
    aborted: int


class WatchHub:
    """Registers open watches and ends them all on shutdown (see the module comment)."""

    def __init__(
        self, backlog: int = DEFAULT_BACKLOG, liveness_interval: float = LIVENESS_INTERVAL
    ) -> None:
        self._backlog = backlog
        self._liveness_interval = liveness_interval
        self.bookmark_interval = BOOKMARK_INTERVAL
        self._open: set[Watch] = set()
        self._closing = False
        self._liveness: asyncio.Task[None] | None = None

    @property
    def closing(self) -> bool:
        return self._closing

    def counts(self) -> dict[tuple[str, str], int]:
        """Open watches per (resource plural, scope)."""
        out: dict[tuple[str, str], int] = {}
        for watch in self._open:
            if not watch.subresource:
                key = (watch.resource, watch.scope)
                out[key] = out.get(key, 0) + 1
        return out

    def longrunning(self) -> dict[tuple[str, str, str], int]:
        """Open streams, watches and followed subresources, per (resource, subresource, scope)."""
        out: dict[tuple[str, str, str], int] = {}
        for watch in self._open:
            key = (watch.resource, watch.subresource, watch.scope)
            out[key] = out.get(key, 0) + 1
        return out

    def open(
        self,
        resource: str,
        scope: str,
        transport: asyncio.Transport | None,
        *,
        subresource: str = "",
    ) -> Watch:
        """A new watch; already ended when the hub is closing (its stream ends at once).

        `scope` is the apiserver's label: "namespace" for a watch in one namespace, else
        "cluster". A `subresource` stream (a followed log) is held and ended the same way.
        """
        queue: asyncio.Queue[Change] = asyncio.Queue(maxsize=self._backlog)
        watch = Watch(resource, scope, queue, transport, subresource=subresource)
        if self._closing:
            watch.end()
            watch.finished.set()
        else:
            self._open.add(watch)
            if transport is not None and (self._liveness is None or self._liveness.done()):
                self._liveness = create_guarded_task(self._check_liveness(), name="watch-liveness")
        return watch

    def end_disconnected(self) -> int:
        """End every open watch whose client has gone (its connection closed); how many."""
        gone = [
            w
            for w in self._open
            if not w.ended and w.transport is not None and w.transport.is_closing()
        ]
        for watch in gone:
            watch.end()
        if gone:
            _log.debug("watches_disconnected", count=len(gone))
        return len(gone)

    async def _check_liveness(self) -> None:
        """While any watch is open: end those whose client has gone (see the module comment)."""
        while self._open:
            await asyncio.sleep(self._liveness_interval)
            self.end_disconnected()

    def finish(self, watch: Watch) -> None:
        """The writer of `watch` has returned: it no longer needs ending."""
        self._open.discard(watch)
        watch.finished.set()
        if not self._open and self._liveness is not None:
            self._liveness.cancel()  # nothing left to check; the next watch starts it again
            self._liveness = None

    async def close(self, grace: float) -> Drained:
        """End every open watch: a stop marker now, the connection aborted after `grace` s."""
        self._closing = True
        await stop_task(self._liveness)
        watches = list(self._open)
        for watch in watches:
            watch.end()
        stuck: list[Watch] = []
        if watches:
            waiters = [asyncio.ensure_future(w.finished.wait()) for w in watches]
            _, pending = await asyncio.wait(waiters, timeout=grace)
            for waiter in pending:
                waiter.cancel()
            stuck = [w for w in watches if not w.finished.is_set()]
        for watch in stuck:
            if watch.transport is not None:
                watch.transport.abort()
        drained = Drained(ended=len(watches) - len(stuck), aborted=len(stuck))
        _log.info("watches_closed", ended=drained.ended, aborted=drained.aborted)
        return drained


class WatchCollector:
    """`apiserver_longrunning_requests` for the open watches, read from the hub at scrape time.

    The apiserver's gauge of long-running requests, with its labels, so a dashboard that shows
    an apiserver's open watches shows the daemon's.
    """

    _NAME = "apiserver_longrunning_requests"
    _HELP = "[STABLE] Gauge of all active long-running apiserver requests broken out by verb, "
    _HELP += "group, version, resource, scope and component. Not all requests are tracked this way."
    _LABELS = ("component", "group", "resource", "scope", "subresource", "verb", "version")

    def __init__(self, hub: WatchHub) -> None:
        self._hub = hub

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self._NAME, self._HELP, labels=self._LABELS)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self._NAME, self._HELP, labels=self._LABELS)
        for (resource, sub, scope), count in sorted(self._hub.longrunning().items()):
            verb = "GET" if sub else "WATCH"
            family.add_metric(("apiserver", "", resource, scope, sub, verb, "v1"), count)
        yield family
