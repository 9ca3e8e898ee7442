"""The change feed: every committed change of every kind, numbered, kept for a while, fanned out.

The apiserver's watch cache in miniature. Every write of an object (a status change included)
takes the next resourceVersion from the one counter here and is published once, with the
object as stored, to the subscribers of its kind. The last `window` changes of each kind are
kept, so a watch that names a resourceVersion (a client resuming where its last watch ended)
gets exactly the changes after it; one older than the window is refused with the apiserver's
410 text, `too old resource version: N (M)`, and the client lists again.

The counter is saved before a version is handed out, so a version is never reused, even after
`kill -9`; the history is memory only, so after a restart a watch from before it is told to
re-list, as an apiserver whose watch cache was just rebuilt does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Changes kept per kind. The apiserver sizes its watch cache per resource (100 by default,
# growing with load); a thousand covers a `kubectl get -w` or a client's watch reconnecting
# after a timeout under the daemon's load tests, and costs only references to shared objects.
DEFAULT_WINDOW = 1000

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change: ADDED | MODIFIED | DELETED, the object as stored, its version."""

    type: str
    object: dict[str, Any]
    version: int


Subscriber = Callable[[Change], None]


class ExpiredError(Exception):
    """A watch from a resourceVersion whose later changes are no longer all kept (410)."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")


@dataclass(slots=True)
class _KindLog:
    changes: deque[Change]
    # Every change of this kind with a version above `floor` is in `changes`.
    floor: int
    subscribers: set[Subscriber]


class ChangeFeed:
    """The resourceVersion counter, and per kind the recent changes and their subscribers."""

    def __init__(
        self,
        version: int,
        *,
        save: Callable[[int], None] = lambda _version: None,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self._version = version
        self._start = version
        self._save = save
        self._window = window
        self._kinds: dict[str, _KindLog] = {}

    @property
    def version(self) -> int:
        """The last version handed out: a list's collection resourceVersion."""
        return self._version

    def next_version(self) -> int:
        version = self._version + 1
        self._save(version)  # saved first: never reused
        self._version = version
        return version

    def _log(self, kind: str) -> _KindLog:
        log = self._kinds.get(kind)
        if log is None:
            log = self._kinds[kind] = _KindLog(deque(), self._start, set())
        return log

    def publish(self, kind: str, change: str, obj: dict[str, Any]) -> None:
        """Record a committed change and hand it to every subscriber of `kind`, once.

        `obj` carries the version its write took (`metadata.resourceVersion`) and is shared
        from now on: nobody may modify it.
        """
        version = int(obj["metadata"]["resourceVersion"])
        log = self._log(kind)
        if len(log.changes) == self._window:
            log.changes.popleft()
            log.floor = log.changes[0].version - 1 if log.changes else version - 1
        entry = Change(change, obj, version)
        log.changes.append(entry)
        for subscriber in list(log.subscribers):
            subscriber(entry)

    def watched(self, kind: str) -> bool:
        log = self._kinds.get(kind)
        return bool(log and log.subscribers)

    def since(self, kind: str, version: int) -> list[Change]:
        """The changes of `kind` after `version`, oldest first; ExpiredError when some of
        them have left the window (or happened before this daemon started)."""
        log = self._log(kind)
        if version < log.floor:
            raise ExpiredError(version, log.floor)
        return [c for c in log.changes if c.version > version]

    def subscribe(self, kind: str, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` with every change of `kind` from now on; returns the unsubscribe."""
        subscribers = self._log(kind).subscribers
        subscribers.add(subscriber)
        return lambda: subscribers.discard(subscriber)
