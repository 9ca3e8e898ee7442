"""Watch-list (`sendInitialEvents`), as client-go's informers open it with the WatchList
feature: the objects as ADDED, a bookmark marking their end at their version, then changes;
`sendInitialEvents=false` sends none of them; the options validated with the apiserver's texts."""

from __future__ import annotations

import pytest
from apikit import PODS, Client, assert_status, cluster_of, create_pod, next_event, pod_manifest

WATCH_LIST = {
    "watch": "1",
    "sendInitialEvents": "true",
    "resourceVersionMatch": "NotOlderThan",
    "allowWatchBookmarks": "true",
}


async def test_initial_objects_then_the_end_bookmark_then_changes(client: Client) -> None:
    await create_pod(client, pod_manifest("a", "busybox:1.36"))
    await create_pod(client, pod_manifest("b", "busybox:1.36"))
    async with client.get(PODS, params={**WATCH_LIST, "resourceVersion": ""}) as resp:
        version = cluster_of(client).resource_version
        first, second, end = [await next_event(resp) for _ in range(3)]
        assert [first["type"], second["type"]] == ["ADDED", "ADDED"]
        assert {first["object"]["metadata"]["name"], second["object"]["metadata"]["name"]} == {
            "a",
            "b",
        }
        assert end["type"] == "BOOKMARK"
        assert end["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        # The version of the state listed: no older than its objects, no newer than now.
        at = int(end["object"]["metadata"]["resourceVersion"])
        assert at <= version
        assert at >= max(int(e["object"]["metadata"]["resourceVersion"]) for e in (first, second))
        created = await create_pod(client, pod_manifest("c", "busybox:1.36"))
        while (event := await next_event(resp))["type"] != "ADDED":
            pass
        assert event["object"]["metadata"]["name"] == "c"
        assert int(created["metadata"]["resourceVersion"]) > int(
            end["object"]["metadata"]["resourceVersion"]
        )


async def test_without_initial_events_a_watch_starts_now(client: Client) -> None:
    await create_pod(client, pod_manifest("a", "busybox:1.36"))
    params = {**WATCH_LIST, "sendInitialEvents": "false", "fieldSelector": "metadata.name!=a"}
    async with client.get(PODS, params=params) as resp:
        await create_pod(client, pod_manifest("b", "busybox:1.36"))
        event = await next_event(resp)
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "b")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"watch": "1", "sendInitialEvents": "true", "allowWatchBookmarks": "true"},
            (
                "resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
                "resourceVersionMatch to NotOlderThan"
            ),
        ),
        (
            {"watch": "1", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"},
            (
                "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting "
                "allowWatchBookmarks to true"
            ),
        ),
        (
            {"watch": "1", "resourceVersionMatch": "NotOlderThan"},
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ),
        ({"sendInitialEvents": "true"}, "sendInitialEvents is forbidden for list"),
        (
            {**WATCH_LIST, "resourceVersionMatch": "Exact"},
            'resourceVersionMatch: Unsupported value: "Exact": supported values: "NotOlderThan"',
        ),
    ],
)
async def test_options_refused(client: Client, params: dict[str, str], message: str) -> None:
    resp = await client.get(PODS, params=params)
    assert resp.status == 422
    body = await resp.json()
    assert_status(body, 422, "Invalid", message_contains=message)
    assert body["message"].startswith('ListOptions.meta.k8s.io "" is invalid: ')


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"resourceVersionMatch": "NotOlderThan"},
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            {"resourceVersionMatch": "Newest", "resourceVersion": "1"},
            'Unsupported value: "Newest": supported values: "Exact", "NotOlderThan", ""',
        ),
        (
            {"resourceVersionMatch": "Exact", "resourceVersion": "0"},
            'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
        ),
    ],
)
async def test_list_match_refused(client: Client, params: dict[str, str], message: str) -> None:
    resp = await client.get(PODS, params=params)
    assert resp.status == 422
    assert_status(await resp.json(), 422, "Invalid", message_contains=message)


async def test_list_match_served(client: Client) -> None:
    params = {"resourceVersionMatch": "NotOlderThan", "resourceVersion": "0"}
    resp = await client.get(PODS, params=params)
    assert resp.status == 200
    assert (await resp.json())["kind"] == "PodList"
