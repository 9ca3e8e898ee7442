"""JSON patches (RFC 6902) as the apiserver applies them: every operation (add, remove,
replace, move, copy, test); a failed `test`, a missing path or an unknown operation is its 422
with the generic text, and nothing is changed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from apikit import PODS, SECRETS, Client, assert_status

JSON_PATCH = {"Content-Type": "application/json-patch+json"}


async def _secret(client: Client) -> dict[str, Any]:
    body = {"metadata": {"name": "s", "labels": {"a": "1", "b": "2"}}, "stringData": {"k": "v"}}
    resp = await client.post(SECRETS, json=body)
    assert resp.status == 201
    return dict(await resp.json())


async def _patch(client: Client, ops: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    resp = await client.patch(f"{SECRETS}/s", data=json.dumps(ops), headers=JSON_PATCH)
    return resp.status, await resp.json()


async def test_move_copy_and_test(client: Client) -> None:
    await _secret(client)
    status, doc = await _patch(
        client,
        [
            {"op": "test", "path": "/metadata/labels/a", "value": "1"},
            {"op": "move", "from": "/metadata/labels/a", "path": "/metadata/labels/c"},
            {"op": "copy", "from": "/metadata/labels/b", "path": "/metadata/labels/d"},
        ],
    )
    assert status == 200, doc
    assert doc["metadata"]["labels"] == {"b": "2", "c": "1", "d": "2"}


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "test", "path": "/metadata/labels/a", "value": "other"}],
        [{"op": "remove", "path": "/metadata/labels/missing"}],
        [{"op": "move", "from": "/metadata/nope", "path": "/metadata/labels/x"}],
        [{"op": "frobnicate", "path": "/metadata/labels/a"}],
        [{"op": "add", "value": "x"}],
    ],
    ids=["failed-test", "missing-path", "missing-from", "unknown-op", "no-path"],
)
async def test_a_patch_that_cannot_apply_is_the_apiservers_422(
    client: Client, ops: list[dict[str, Any]]
) -> None:
    created = await _secret(client)
    # An operation that would apply comes first: nothing of the patch may be kept.
    ops = [{"op": "add", "path": "/metadata/labels/z", "value": "9"}, *ops]
    status, body = await _patch(client, ops)
    assert status == 422
    assert_status(body, 422, "Invalid")
    assert body["message"] == "the server rejected our request due to an error in our request"
    stored = await (await client.get(f"{SECRETS}/s")).json()
    assert stored["metadata"]["labels"] == created["metadata"]["labels"]
    assert stored["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_a_removed_label_is_gone_from_a_pod_and_a_secret(client: Client) -> None:
    await _secret(client)
    status, doc = await _patch(client, [{"op": "remove", "path": "/metadata/labels/a"}])
    assert status == 200, doc
    assert doc["metadata"]["labels"] == {"b": "2"}
    pod = {
        "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
    }
    assert (await client.post(PODS, json=pod)).status == 201
    ops = [{"op": "remove", "path": "/metadata/labels/a"}]
    resp = await client.patch(f"{PODS}/p", data=json.dumps(ops), headers=JSON_PATCH)
    doc = await resp.json()
    assert resp.status == 200, doc
    assert doc["metadata"]["labels"] == {"b": "2"}
