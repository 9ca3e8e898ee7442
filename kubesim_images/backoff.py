"""Per-image pull back-off, as client-go's `flowcontrol.Backoff` (without jitter).

The kubelet keys entries by `podUID + "_" + image as written`. `next` doubles the delay up to the
cap; an entry not updated for more than twice the cap starts again from the initial delay; "in
back-off" means `now - lastUpdate < backoff`, strictly. A successful pull does not reset an entry
(the kubelet only garbage-collects expired ones), so behaviour after recovery matches a real node.
Times and delays are integer nanoseconds, as Go's `time.Time`/`time.Duration`, so a sync landing
exactly when a back-off ends is decided by the strict comparison, never by float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

_SECOND = 1_000_000_000


@dataclass(slots=True)
class BackoffEntry:
    backoff: int  # ns
    last_update: int  # loop time, ns


class Backoff:
    """flowcontrol.Backoff on a caller-supplied clock (`now` is loop time in nanoseconds)."""

    __slots__ = (
        "_entries",
        "initial",
        "keys",
        "maximum",
        "on_change",
    )

    def __init__(self, initial: int = 10 * _SECOND, maximum: int = 300 * _SECOND) -> None:
        self.initial = initial
        self.maximum = maximum
        self._entries: dict[str, BackoffEntry] = {}
        # The keys with an entry, a live view: empty on most nodes of a large run, which then
        # need not ask about any key.
        self.keys = self._entries.keys()
        # Told of every change (entry None: removed), e.g. to write it through to disk.
        self.on_change: Callable[[str, BackoffEntry | None], None] | None = None

    def _expired(self, now: int, entry: BackoffEntry) -> bool:
        return now - entry.last_update > 2 * self.maximum

    def next(self, key: str, now: int) -> int:
        """Record a failure at `now`; returns the new back-off delay."""
        entry = self._entries.get(key)
        if entry is None or self._expired(now, entry):
            entry = BackoffEntry(backoff=self.initial, last_update=now)
            self._entries[key] = entry
        else:
            entry.backoff = min(entry.backoff * 2, self.maximum)
            entry.last_update = now
        if self.on_change is not None:
            self.on_change(key, entry)
        return entry.backoff

    def is_in_backoff_since_update(self, key: str, now: int) -> bool:
        entry = self._entries.get(key)
        if entry is None or self._expired(now, entry):
            return False
        return now - entry.last_update < entry.backoff

    def get(self, key: str) -> BackoffEntry | None:
        return self._entries.get(key)

    def gc(self, now: int) -> list[str]:
        """Drop entries not updated for more than twice the cap (`Backoff.GC`); returns their
        keys."""
        if not self._entries:
            return []
        expired = [k for k, e in self._entries.items() if self._expired(now, e)]
        for key in expired:
            self.delete(key)
        return expired

    def delete(self, key: str) -> None:
        if self._entries.pop(key, None) is not None and self.on_change is not None:
            self.on_change(key, None)

    def restore(self, key: str, backoff: int, last_update: int) -> None:
        """Put back an entry saved before a restart (no change notification)."""
        self._entries[key] = BackoffEntry(backoff=backoff, last_update=last_update)

    def entries(self) -> dict[str, BackoffEntry]:
        return dict(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
