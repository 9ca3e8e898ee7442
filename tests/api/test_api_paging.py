"""`limit`/`continue` on lists and creationTimestamp on updates, as the apiserver serves them."""

from __future__ import annotations

import json
from typing import Any

from apikit import EVENTS, PODS, SECRETS, TABLE, Client, assert_status, create_pod, pod_manifest

PAUSE = "registry.k8s.io/pause:3.10"
MERGE = {"Content-Type": "application/merge-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}


async def _pages(client: Client, path: str, limit: int, **headers: str) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    params = {"limit": str(limit)}
    while True:
        resp = await client.get(path, params=params, headers=headers)
        doc = await resp.json()
        assert resp.status == 200, doc
        pages.append(doc)
        token = doc["metadata"].get("continue")
        if not token:
            return pages
        params = {"limit": str(limit), "continue": token}


class TestPaging:
    async def test_pages_of_a_list_hold_every_object_once(self, client: Client) -> None:
        names = [f"s{i}" for i in range(5)]
        for name in reversed(names):
            resp = await client.post(SECRETS, json={"metadata": {"name": name}})
            assert resp.status == 201
        pages = await _pages(client, SECRETS, 2)
        assert [[i["metadata"]["name"] for i in p["items"]] for p in pages] == [
            ["s0", "s1"],
            ["s2", "s3"],
            ["s4"],
        ]
        assert [p["metadata"].get("remainingItemCount") for p in pages] == [3, 1, None]

    async def test_pages_of_a_table(self, client: Client) -> None:
        for name in ("a", "b", "c"):
            await create_pod(client, pod_manifest(name, PAUSE))
        pages = await _pages(client, PODS, 2, Accept=TABLE)
        assert [[r["cells"][0] for r in p["rows"]] for p in pages] == [["a", "b"], ["c"]]

    async def test_without_a_limit_nothing_changes(self, client: Client) -> None:
        await create_pod(client, pod_manifest("a", PAUSE))
        doc = await (await client.get(PODS)).json()
        assert set(doc["metadata"]) == {"resourceVersion"}

    async def test_a_page_keeps_the_lists_order(self, client: Client) -> None:
        # kubectl always sends limit=500: paging must not reorder what a list shows.
        for name in ("zeta", "alpha"):
            await create_pod(client, pod_manifest(name, PAUSE))
        whole = await (await client.get(EVENTS)).json()
        paged = await (await client.get(EVENTS, params={"limit": "500"})).json()
        assert [e["metadata"]["name"] for e in paged["items"]] == [
            e["metadata"]["name"] for e in whole["items"]
        ]
        assert "continue" not in paged["metadata"]

    async def test_the_next_page_after_the_last_object_was_deleted(self, client: Client) -> None:
        for name in ("s0", "s1", "s2", "s3"):
            assert (await client.post(SECRETS, json={"metadata": {"name": name}})).status == 201
        first = await (await client.get(SECRETS, params={"limit": "2"})).json()
        assert (await client.delete(f"{SECRETS}/s1")).status == 200
        params = {"limit": "2", "continue": first["metadata"]["continue"]}
        second = await (await client.get(SECRETS, params=params)).json()
        assert [i["metadata"]["name"] for i in second["items"]] == ["s2", "s3"]

    async def test_a_token_not_issued_here_is_refused(self, client: Client) -> None:
        resp = await client.get(PODS, params={"limit": "1", "continue": "bm9wZQ=="})
        assert_status(await resp.json(), 400, "BadRequest", message_contains="continue key")


class TestCreationTimestampOnUpdate:
    """kubectl apply of a manifest with `creationTimestamp: null` patches it to null."""

    async def test_a_pod_keeps_its_creation_time(self, client: Client) -> None:
        pod = await create_pod(client, pod_manifest("w", PAUSE))
        patch = {"metadata": {"creationTimestamp": None, "labels": {"a": "b"}}}
        resp = await client.patch(f"{PODS}/w", data=json.dumps(patch), headers=STRATEGIC)
        doc = await resp.json()
        assert resp.status == 200, doc
        assert doc["metadata"]["creationTimestamp"] == pod["metadata"]["creationTimestamp"]
        assert doc["metadata"]["labels"] == {"a": "b"}

    async def test_a_stored_kind_keeps_its_creation_time(self, client: Client) -> None:
        created = await (await client.post(SECRETS, json={"metadata": {"name": "s"}})).json()
        patch = {"metadata": {"creationTimestamp": None}, "stringData": {"k": "v"}}
        resp = await client.patch(f"{SECRETS}/s", data=json.dumps(patch), headers=MERGE)
        doc = await resp.json()
        assert resp.status == 200, doc
        assert doc["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
