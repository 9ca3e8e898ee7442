"""Per-image pull back-off, as client-go's `flowcontrol.Backoff` (without jitter).

The kubelet keys entries by `podUID + "_" + image as written`. `next` doubles the delay up to the
cap; an entry not updated for more than twice the cap starts again from the initial delay; "in
back-off" means `now - lastUpdate < backoff`, strictly. A successful pull does not reset an entry
(the kubelet only garbage-collects expired ones), so behaviour after recovery matches a real node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class BackoffEntry:
    backoff: float
    last_update: float


class Backoff:
    """flowcontrol.Backoff on a caller-supplied clock (`now` is loop time in seconds)."""

    def __init__(self, initial: float = 10.0, maximum: float = 300.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._entries: dict[str, BackoffEntry] = {}
        # Told of every change (entry None: removed), e.g. to write it through to disk.
        self.on_change: Callable[[str, BackoffEntry | None], None] | None = None

    def _expired(self, now: float, entry: BackoffEntry) -> bool:
        return now - entry.last_update > 2 * self.maximum

    def next(self, key: str, now: float) -> float:
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

    def is_in_backoff_since_update(self, key: str, now: float) -> bool:
        entry = self._entries.get(key)
        if entry is None or self._expired(now, entry):
            return False
        return now - entry.last_update < entry.backoff

    def get(self, key: str) -> BackoffEntry | None:
        return self._entries.get(key)

    def gc(self, now: float) -> None:
        """Drop entries not updated for more than twice the cap (`Backoff.GC`)."""
        for key in [k for k, e in self._entries.items() if self._expired(now, e)]:
            self.delete(key)

    def delete(self, key: str) -> None:
        if self._entries.pop(key, None) is not None and self.on_change is not None:
            self.on_change(key, None)

    def restore(self, key: str, backoff: float, last_update: float) -> None:
        """Put back an entry saved before a restart (no change notification)."""
        self._entries[key] = BackoffEntry(backoff=backoff, last_update=last_update)

    def entries(self) -> dict[str, BackoffEntry]:
        return dict(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
