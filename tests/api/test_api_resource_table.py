"""Adding a kind is one resource-table entry plus its validation: a ConfigMap (core group)
and a Widget (a named group, as apps/v1 kinds will be) declared here, and nothing else, get
discovery, routes, Tables, selectors, watches from a resourceVersion, dry runs, PUT with
optimistic concurrency, and their validation's Status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import pytest
from apikit import TABLE, ApiFactory, Client, assert_status, cluster_of

from kubesim_images.clock import WallClock
from kubesim_images.daemon.kube import Column, invalid
from kubesim_images.daemon.resources import RESOURCES, Resource
from kubesim_images.daemon.rows import Row, age
from kubesim_images.daemon.storage import ObjectStorage
from kubesim_images.pod import FieldError

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
WIDGETS = "/apis/example.kubesim.io/v1/namespaces/default/widgets"
MERGE = {"Content-Type": "application/merge-patch+json"}


class StringDataStrategy:
    """The validation a ConfigMap-like kind needs: `data` maps strings to strings."""

    def _check(self, data: Any, name: str) -> dict[str, str]:
        if data is None:
            return {}
        if not isinstance(data, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise invalid(
                "ConfigMap",
                name,
                [FieldError("data", "FieldValueInvalid", "Invalid value: must map strings")],
            )
        return dict(data)

    def prepare_create(self, body: Mapping[str, Any], doc: dict[str, Any]) -> None:
        doc["data"] = self._check(body.get("data"), doc["metadata"]["name"])

    def shape(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if k in {"kind", "apiVersion", "metadata", "data"}}

    def prepare_update(
        self, doc: dict[str, Any], before: Mapping[str, Any], patch: Mapping[str, Any]
    ) -> None:
        del before, patch
        doc["data"] = self._check(doc.get("data"), doc["metadata"]["name"])


COLUMNS: tuple[Column, ...] = (
    ("Name", "string", "name", 0),
    ("Data", "integer", "", 0),
    ("Age", "string", "", 0),
)


def data_row(clock: WallClock) -> Row:
    def row(doc: dict[str, Any]) -> list[Any]:
        meta = doc["metadata"]
        return [meta["name"], len(doc.get("data") or {}), age(clock, meta["creationTimestamp"])]

    return row


CONFIGMAP = Resource(
    kind="ConfigMap",
    plural="configmaps",
    singular="configmap",
    namespaced=True,
    verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    columns=COLUMNS,
    row=data_row,
    short_names=("cm",),
    strategy=StringDataStrategy(),
)
WIDGET = Resource(
    kind="Widget",
    plural="widgets",
    singular="widget",
    namespaced=True,
    group="example.kubesim.io",
    verbs=("create", "get", "list", "watch"),
    columns=COLUMNS,
    row=data_row,
    strategy=StringDataStrategy(),
)


@pytest.fixture
async def client(api: ApiFactory) -> Client:
    return await api(resources=(*RESOURCES, CONFIGMAP, WIDGET))


async def test_discovery_lists_the_new_kinds(client: Client) -> None:
    core = await (await client.get("/api/v1")).json()
    [entry] = [r for r in core["resources"] if r["name"] == "configmaps"]
    assert entry == {
        "name": "configmaps",
        "singularName": "configmap",
        "namespaced": True,
        "kind": "ConfigMap",
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        "shortNames": ["cm"],
    }
    groups = await (await client.get("/apis")).json()
    names = [g["name"] for g in groups["groups"]]
    assert names[:2] == ["apps", "example.kubesim.io"]  # the table's, then those beside it
    assert names[2:] == ["authentication.k8s.io", "authorization.k8s.io", "coordination.k8s.io"]
    assert groups["groups"][1]["preferredVersion"]["groupVersion"] == "example.kubesim.io/v1"
    group = await (await client.get("/apis/example.kubesim.io/v1")).json()
    assert [r["name"] for r in group["resources"]] == ["widgets"]


async def test_create_get_list_table_patch_replace_delete(client: Client) -> None:
    created = await client.post(CONFIGMAPS, json={"metadata": {"name": "c"}, "data": {"a": "1"}})
    assert created.status == 201
    doc = await created.json()
    assert (doc["kind"], doc["apiVersion"], doc["data"]) == ("ConfigMap", "v1", {"a": "1"})
    table = await (await client.get(CONFIGMAPS, headers={"Accept": TABLE})).json()
    assert [row["cells"][:2] for row in table["rows"]] == [["c", 1]]
    listed = await (
        await client.get(CONFIGMAPS, params={"fieldSelector": "metadata.name=c"})
    ).json()
    assert listed["kind"] == "ConfigMapList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["c"]
    patched = await client.patch(
        f"{CONFIGMAPS}/c", data=json.dumps({"data": {"b": "2"}}), headers=MERGE
    )
    assert (await patched.json())["data"] == {"a": "1", "b": "2"}
    stale = {**doc, "data": {"z": "9"}}  # carries the version before the patch
    assert_status(await (await client.put(f"{CONFIGMAPS}/c", json=stale)).json(), 409, "Conflict")
    current = await (await client.get(f"{CONFIGMAPS}/c")).json()
    replaced = await client.put(f"{CONFIGMAPS}/c", json={**current, "data": {"z": "9"}})
    assert replaced.status == 200
    assert (await replaced.json())["data"] == {"z": "9"}
    assert (await client.delete(f"{CONFIGMAPS}/c")).status == 200
    assert_status(await (await client.get(f"{CONFIGMAPS}/c")).json(), 404, "NotFound")


async def test_its_validation_answers_the_status(client: Client) -> None:
    bad = await client.post(CONFIGMAPS, json={"metadata": {"name": "c"}, "data": {"a": 1}})
    assert_status(await bad.json(), 422, "Invalid", message_contains="data")
    taken = await client.post(WIDGETS, json={"metadata": {"name": "w"}})
    assert taken.status == 201
    again = await client.post(WIDGETS, json={"metadata": {"name": "w"}})
    assert_status(await again.json(), 409, "AlreadyExists")
    assert (await client.delete(f"{WIDGETS}/w")).status == 405  # not a declared verb


async def test_a_dry_run_stores_nothing(client: Client) -> None:
    dry = await client.post(CONFIGMAPS, params={"dryRun": "All"}, json={"metadata": {"name": "c"}})
    assert dry.status == 201
    assert "resourceVersion" not in (await dry.json())["metadata"]
    assert (await client.get(f"{CONFIGMAPS}/c")).status == 404


async def test_a_watch_from_a_version_replays_the_kinds_changes(client: Client) -> None:
    first = await (await client.post(WIDGETS, json={"metadata": {"name": "a"}})).json()
    await client.post(WIDGETS, json={"metadata": {"name": "b"}})
    params = {"watch": "1", "resourceVersion": first["metadata"]["resourceVersion"]}
    async with client.get(WIDGETS, params=params) as response:
        async with asyncio.timeout(10):  # bounds a hang only
            event = json.loads(await response.content.readline())
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "b")
    assert event["object"]["apiVersion"] == "example.kubesim.io/v1"


async def test_a_controllers_status_write_is_one_change_at_a_new_version(client: Client) -> None:
    created = await (await client.post(WIDGETS, json={"metadata": {"name": "w"}})).json()
    storage = cluster_of(client).stores["Widget"]
    assert isinstance(storage, ObjectStorage)
    written = storage.write_status("default", "w", {"replicas": 3})
    params = {"watch": "1", "resourceVersion": created["metadata"]["resourceVersion"]}
    async with client.get(WIDGETS, params=params) as response:
        async with asyncio.timeout(10):  # bounds a hang only
            event = json.loads(await response.content.readline())
    assert event["type"] == "MODIFIED"
    assert event["object"]["status"] == {"replicas": 3}
    version = int(event["object"]["metadata"]["resourceVersion"])
    assert version == int(written["metadata"]["resourceVersion"])
    assert version > int(created["metadata"]["resourceVersion"])
    shown = await (await client.get(f"{WIDGETS}/w")).json()
    assert shown["status"] == {"replicas": 3}
