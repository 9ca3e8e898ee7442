"""The daemon's event cap (README, `MAX_EVENTS`): the least recently recorded or aggregated
event goes first, from memory and the state database, and watches are sent its DELETED."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kubesim_images.clock import WallClock
from kubesim_images.daemon import eventstore
from kubesim_images.daemon.eventstore import EventStore
from kubesim_images.state import StateStore


def test_the_cap_is_5000() -> None:
    assert eventstore.MAX_EVENTS == 5000


async def test_the_least_recently_recorded_event_is_dropped_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventstore, "MAX_EVENTS", 3)
    state = StateStore(tmp_path)
    versions = iter(range(1, 100))
    changes: list[tuple[str, str]] = []

    def on_change(change: str, doc: dict[str, Any]) -> None:
        changes.append((change, doc["reason"]))

    events = EventStore(
        state, WallClock(asyncio.get_running_loop(), 0.0), lambda: next(versions), on_change
    )
    involved = {"kind": "Pod", "namespace": "default", "name": "p", "uid": "u"}
    for reason in ("A", "B", "C"):
        events.record(involved, "Normal", reason, "m", "kubelet")
    events.record(involved, "Normal", "A", "m", "kubelet")  # a repeat: A is recent again
    events.record(involved, "Normal", "D", "m", "kubelet")
    assert sorted(e["reason"] for e in events.list("default")) == ["A", "C", "D"]
    assert sorted(doc["reason"] for doc in state.events()) == ["A", "C", "D"]
    assert changes[3:] == [("MODIFIED", "A"), ("ADDED", "D"), ("DELETED", "B")]
    state.close()
