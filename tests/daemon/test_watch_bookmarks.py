"""Watch bookmarks: `allowWatchBookmarks=true` gets periodic BOOKMARK events carrying the current
resourceVersion, the last one before the watch's deadline; without it, none."""

from __future__ import annotations

import asyncio

import pytest
from apikit import PODS, TABLE, Client, cluster_of, create_pod, next_event, pod_manifest

from kubesim_images.daemon.api import WATCHES
from kubesim_images.daemon.watches import BOOKMARK_INTERVAL, WatchHub, next_bookmark


def hub_of(client: Client) -> WatchHub:
    return client.server.app[WATCHES]  # type: ignore[union-attr]


class TestWhenDue:
    """`next_bookmark`, the cacher's nextBookmarkTime, in plain numbers."""

    def test_a_minute_apart_by_default(self) -> None:
        assert BOOKMARK_INTERVAL == 60.0
        assert next_bookmark(100.0, 60.0, 100.0 + 1800) == 160.0

    def test_the_last_one_comes_two_seconds_before_the_deadline(self) -> None:
        assert next_bookmark(100.0, 60.0, 130.0) == 128.0

    def test_none_once_that_moment_has_passed(self) -> None:
        assert next_bookmark(129.0, 60.0, 130.0) is None


class TestBookmarks:
    async def test_a_bookmark_carries_the_current_version(self, client: Client) -> None:
        hub_of(client).bookmark_interval = 0.01
        await create_pod(client, pod_manifest("web", "busybox:1.36"))
        params = {"watch": "1", "allowWatchBookmarks": "true", "fieldSelector": "metadata.name=x"}
        async with client.get(PODS, params=params) as resp:
            event = await next_event(resp)
            assert event["type"] == "BOOKMARK"
            version = cluster_of(client).resource_version
            assert event["object"] == {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(version), "creationTimestamp": None},
            }

    async def test_changes_still_come_between_bookmarks_in_order(self, client: Client) -> None:
        hub_of(client).bookmark_interval = 0.001
        params = {"watch": "1", "allowWatchBookmarks": "true"}
        async with client.get(PODS, params=params) as resp:
            created = await create_pod(client, pod_manifest("web", "busybox:1.36"))
            seen: list[tuple[str, int]] = []
            while not seen or seen[-1][0] != "ADDED":
                event = await next_event(resp)
                seen.append((event["type"], int(event["object"]["metadata"]["resourceVersion"])))
        added = int(created["metadata"]["resourceVersion"])
        assert seen[-1] == ("ADDED", added)
        # A bookmark never claims a version the watch has not been sent yet.
        assert all(v < added for kind, v in seen[:-1])

    async def test_a_table_watch_gets_table_bookmarks(self, client: Client) -> None:
        hub_of(client).bookmark_interval = 0.01
        params = {"watch": "1", "allowWatchBookmarks": "1", "fieldSelector": "metadata.name=x"}
        async with client.get(PODS, params=params, headers={"Accept": TABLE}) as resp:
            event = await next_event(resp)
        assert event["type"] == "BOOKMARK"
        assert event["object"]["kind"] == "Table"
        assert event["object"]["metadata"]["resourceVersion"]

    @pytest.mark.parametrize("flag", [None, "false"])
    async def test_none_unless_asked(self, client: Client, flag: str | None) -> None:
        hub_of(client).bookmark_interval = 0.001
        params = {"watch": "1"}
        if flag is not None:
            params["allowWatchBookmarks"] = flag
        async with client.get(PODS, params=params) as resp:
            # Fifty intervals in which a bookmark would be due (the test cannot pass by luck
            # when they are sent, and never depends on timing when they are not).
            await asyncio.sleep(0.05)
            await create_pod(client, pod_manifest("web", "busybox:1.36"))
            event = await next_event(resp)
        assert event["type"] == "ADDED"
