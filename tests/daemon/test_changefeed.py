"""The change feed: versions never reused, each change delivered once, a bounded history."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim_images.daemon.changefeed import ADDED, MODIFIED, Change, ChangeFeed, ExpiredError


def _obj(feed: ChangeFeed, name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(feed.next_version())}}


def test_versions_are_saved_before_they_are_handed_out() -> None:
    saved: list[int] = []
    feed = ChangeFeed(1000, save=saved.append)
    assert [feed.next_version(), feed.next_version()] == [1001, 1002]
    assert saved == [1001, 1002]
    assert feed.version == 1002


def test_each_change_reaches_each_subscriber_of_its_kind_once() -> None:
    feed = ChangeFeed(0)
    pods: list[Change] = []
    secrets: list[Change] = []
    unsubscribe = feed.subscribe("Pod", pods.append)
    feed.subscribe("Secret", secrets.append)
    feed.publish("Pod", ADDED, _obj(feed, "a"))
    feed.publish("Secret", ADDED, _obj(feed, "s"))
    unsubscribe()
    feed.publish("Pod", MODIFIED, _obj(feed, "a"))
    assert [(c.type, c.object["metadata"]["name"], c.version) for c in pods] == [("ADDED", "a", 1)]
    assert [c.version for c in secrets] == [2]


def test_since_replays_the_changes_after_a_version_of_that_kind_only() -> None:
    feed = ChangeFeed(10)
    for name in ("a", "b", "c"):
        feed.publish("Pod", ADDED, _obj(feed, name))  # 11, 13, 15
        feed.publish("Secret", ADDED, _obj(feed, name))  # 12, 14, 16
    assert [c.version for c in feed.since("Pod", 11)] == [13, 15]
    assert feed.since("Pod", 15) == []
    assert [c.version for c in feed.since("Pod", 10)] == [11, 13, 15]


def test_a_version_from_before_the_start_is_expired() -> None:
    feed = ChangeFeed(1000)
    feed.publish("Pod", ADDED, _obj(feed, "a"))
    with pytest.raises(ExpiredError, match=r"^too old resource version: 999 \(1000\)$"):
        feed.since("Pod", 999)


def test_the_window_keeps_the_last_changes_and_expires_what_it_dropped() -> None:
    feed = ChangeFeed(0, window=3)
    for name in "abcde":
        feed.publish("Pod", ADDED, _obj(feed, name))  # versions 1..5; 3, 4, 5 kept
    assert [c.version for c in feed.since("Pod", 2)] == [3, 4, 5]
    # As the apiserver's watch cache: the oldest kept is 3, so 2 (= 3 - 1) is the oldest
    # version a watch may start from, and the message names it.
    with pytest.raises(ExpiredError, match=r"^too old resource version: 1 \(2\)$"):
        feed.since("Pod", 1)
