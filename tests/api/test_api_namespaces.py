"""Namespaces as the apiserver keeps them: objects of their own, NamespaceLifecycle admission
(404 in a missing namespace, 403 in one being terminated, three built-in ones immortal), the
`default` ServiceAccount of each, and deletion: Terminating, its content deleted, then gone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from apikit import Client, assert_status, cluster_of, pod_manifest

NAMESPACES = "/api/v1/namespaces"
PAUSE = "registry.k8s.io/pause:3.10"
MERGE = {"Content-Type": "application/merge-patch+json"}


async def _create_namespace(client: Client, name: str, **meta: Any) -> dict[str, Any]:
    resp = await client.post(NAMESPACES, json={"metadata": {"name": name, **meta}})
    doc = await resp.json()
    assert resp.status == 201, doc
    return dict(doc)


class Watch:
    """A watch opened before the change it waits for: every event of one path, in order."""

    def __init__(self, response: Any) -> None:
        self.response = response

    async def next(self) -> tuple[str, dict[str, Any]]:
        async with asyncio.timeout(10):  # bounds a hang only
            line = await self.response.content.readline()
        assert line, "the watch ended"
        event = json.loads(line)
        return event["type"], event["object"]

    async def until(self, change: str, name: str) -> dict[str, Any]:
        while True:
            kind, obj = await self.next()
            if kind == change and obj["metadata"]["name"] == name:
                return obj


@pytest.fixture
async def watch_of(client: Client) -> AsyncIterator[Any]:
    opened: list[Any] = []

    async def open_watch(path: str, version: str) -> Watch:
        response = await client.get(path, params={"watch": "1", "resourceVersion": version})
        assert response.status == 200
        opened.append(response)
        return Watch(response)

    yield open_watch
    for response in opened:
        response.close()


async def _version(client: Client) -> str:
    listed = await (await client.get(NAMESPACES)).json()
    return str(listed["metadata"]["resourceVersion"])


class TestAdmission:
    async def test_a_create_in_a_missing_namespace_is_not_found_and_creates_nothing(
        self, client: Client
    ) -> None:
        resp = await client.post(f"{NAMESPACES}/nope/pods", json=pod_manifest("p", PAUSE))
        body = await resp.json()
        assert resp.status == 404
        assert_status(body, 404, "NotFound")
        assert body["message"] == 'namespaces "nope" not found'
        assert body["details"] == {"name": "nope", "kind": "namespaces"}
        assert (await client.get(f"{NAMESPACES}/nope")).status == 404
        resp = await client.post(f"{NAMESPACES}/nope/secrets", json={"metadata": {"name": "s"}})
        assert resp.status == 404

    async def test_the_built_in_namespaces_exist_and_three_cannot_be_deleted(
        self, client: Client
    ) -> None:
        listed = await (await client.get(NAMESPACES)).json()
        names = {n["metadata"]["name"] for n in listed["items"]}
        assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
        for name in ("default", "kube-system", "kube-public"):
            resp = await client.delete(f"{NAMESPACES}/{name}")
            body = await resp.json()
            assert_status(body, 403, "Forbidden")
            assert body["message"] == (
                f'namespaces "{name}" is forbidden: this namespace may not be deleted'
            )
            doc = await (await client.get(f"{NAMESPACES}/{name}")).json()
            assert doc["status"]["phase"] == "Active"

    async def test_kube_node_lease_is_deleted_then_created_again(
        self, client: Client, watch_of: Any
    ) -> None:
        """As a cluster: NamespaceLifecycle protects only three; the system namespaces
        controller creates kube-node-lease again once it is gone, a new object."""
        before = await (await client.get(f"{NAMESPACES}/kube-node-lease")).json()
        watch = await watch_of(NAMESPACES, before["metadata"]["resourceVersion"])
        resp = await client.delete(f"{NAMESPACES}/kube-node-lease")
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["status"]["phase"] == "Terminating"
        await watch.until("DELETED", "kube-node-lease")
        again = await watch.until("ADDED", "kube-node-lease")
        assert again["status"] == {"phase": "Active"}
        assert again["metadata"]["uid"] != before["metadata"]["uid"]
        got = await (await client.get(f"{NAMESPACES}/kube-node-lease")).json()
        assert got["metadata"]["uid"] == again["metadata"]["uid"]


class TestObjects:
    async def test_a_namespace_is_an_object_of_its_own(self, client: Client) -> None:
        before = await _version(client)
        team = await _create_namespace(client, "team", labels={"tier": "web"})
        other = await _create_namespace(client, "other")
        meta = team["metadata"]
        assert int(meta["resourceVersion"]) > int(before)
        assert meta["uid"] != other["metadata"]["uid"]
        assert meta["labels"] == {"tier": "web", "kubernetes.io/metadata.name": "team"}
        assert team["spec"] == {"finalizers": ["kubernetes"]}
        assert team["status"] == {"phase": "Active"}
        assert "namespace" not in meta
        got = await (await client.get(f"{NAMESPACES}/team")).json()
        assert got == team
        default = await (await client.get(f"{NAMESPACES}/default")).json()
        assert default["metadata"]["uid"] not in {meta["uid"], other["metadata"]["uid"]}

    async def test_a_new_namespace_gets_its_default_service_account(self, client: Client) -> None:
        await _create_namespace(client, "team")
        resp = await client.get(f"{NAMESPACES}/team/serviceaccounts/default")
        assert resp.status == 200, await resp.text()
        created = await client.post(f"{NAMESPACES}/team/pods", json=pod_manifest("p", PAUSE))
        pod = await created.json()
        assert created.status == 201, pod
        assert pod["spec"]["serviceAccountName"] == "default"

    async def test_a_deleted_default_account_comes_back(self, client: Client, watch_of) -> None:
        await _create_namespace(client, "team")
        accounts = f"{NAMESPACES}/team/serviceaccounts"
        watch = await watch_of(accounts, await _version(client))
        assert (await client.delete(f"{accounts}/default")).status == 200
        await watch.until("DELETED", "default")
        again = await watch.until("ADDED", "default")
        assert (await client.get(f"{accounts}/default")).status == 200
        assert again["metadata"]["namespace"] == "team"

    async def test_labels_can_be_patched_but_not_the_status_or_the_name_label(
        self, client: Client
    ) -> None:
        await _create_namespace(client, "team")
        patch = {
            "metadata": {"labels": {"env": "prod", "kubernetes.io/metadata.name": "x"}},
            "status": {"phase": "Terminating"},
            "spec": {"finalizers": []},
        }
        resp = await client.patch(f"{NAMESPACES}/team", data=json.dumps(patch), headers=MERGE)
        doc = await resp.json()
        assert resp.status == 200, doc
        assert doc["metadata"]["labels"] == {"env": "prod", "kubernetes.io/metadata.name": "team"}
        assert doc["status"] == {"phase": "Active"}
        assert doc["spec"] == {"finalizers": ["kubernetes"]}
        selected = await client.get(NAMESPACES, params={"labelSelector": "env=prod"})
        names = [n["metadata"]["name"] for n in (await selected.json())["items"]]
        assert names == ["team"]


class TestDeletion:
    async def test_terminating_then_gone_with_its_content(self, client: Client, watch_of) -> None:
        await _create_namespace(client, "team")
        pod = await client.post(f"{NAMESPACES}/team/pods", json=pod_manifest("p", PAUSE))
        assert pod.status == 201
        secret = await client.post(f"{NAMESPACES}/team/secrets", json={"metadata": {"name": "s"}})
        assert secret.status == 201
        kept = await client.post(f"{NAMESPACES}/default/secrets", json={"metadata": {"name": "s"}})
        assert kept.status == 201
        version = await _version(client)
        namespaces = await watch_of(NAMESPACES, version)
        pods = await watch_of(f"{NAMESPACES}/team/pods", version)

        resp = await client.delete(f"{NAMESPACES}/team")
        answered = await resp.json()
        assert resp.status == 200, answered
        assert answered["status"]["phase"] == "Terminating"
        assert answered["metadata"]["deletionTimestamp"]
        assert answered["spec"]["finalizers"] == ["kubernetes"]

        terminating = await namespaces.until("MODIFIED", "team")
        assert terminating["status"]["phase"] == "Terminating"
        assert terminating["metadata"]["deletionTimestamp"]
        await pods.until("DELETED", "p")
        gone = await namespaces.until("DELETED", "team")
        assert gone["spec"]["finalizers"] == []
        assert (await client.get(f"{NAMESPACES}/team")).status == 404
        for kind in ("pods", "secrets", "serviceaccounts", "events"):
            listed = await (await client.get(f"{NAMESPACES}/team/{kind}")).json()
            assert listed["items"] == [], kind
        assert (await client.get(f"{NAMESPACES}/default/secrets/s")).status == 200
        # The name is free again: a namespace created under it is another object.
        again = await _create_namespace(client, "team")
        assert again["metadata"]["uid"] != answered["metadata"]["uid"]

    async def test_a_create_in_a_terminating_namespace_is_forbidden(
        self, client: Client, watch_of
    ) -> None:
        await _create_namespace(client, "team")
        # Hold the namespace controller before it deletes anything, as a slow one would be.
        namespaces = cluster_of(client).namespaces
        release = asyncio.Event()
        purge = namespaces._purge

        async def held(name: str) -> None:
            await release.wait()
            await purge(name)

        namespaces._purge = held
        watch = await watch_of(NAMESPACES, await _version(client))
        assert (await client.delete(f"{NAMESPACES}/team")).status == 200

        resp = await client.post(f"{NAMESPACES}/team/pods", json=pod_manifest("late", PAUSE))
        body = await resp.json()
        assert_status(body, 403, "Forbidden")
        assert body["message"] == (
            'pods "late" is forbidden: unable to create new content in namespace team '
            "because it is being terminated"
        )
        assert body["details"]["causes"] == [
            {
                "reason": "NamespaceTerminating",
                "message": "namespace team is being terminated",
                "field": "metadata.namespace",
            }
        ]
        # A second delete answers the namespace as it is: its deletion is under way.
        again = await client.delete(f"{NAMESPACES}/team")
        body = await again.json()
        assert again.status == 200, body
        assert body["status"]["phase"] == "Terminating"
        release.set()
        await watch.until("DELETED", "team")

    async def test_a_dry_run_delete_changes_nothing(self, client: Client) -> None:
        await _create_namespace(client, "team")
        resp = await client.delete(f"{NAMESPACES}/team", params={"dryRun": "All"})
        doc = await resp.json()
        assert resp.status == 200, doc
        assert doc["status"]["phase"] == "Terminating"
        stored = await (await client.get(f"{NAMESPACES}/team")).json()
        assert stored["status"]["phase"] == "Active"
        assert "deletionTimestamp" not in stored["metadata"]
