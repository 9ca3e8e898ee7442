"""Issue 7's findings that an in-process daemon shows: each test failed before its fix.

1 a pod of many present images cost a status render per container; 2 writes keyed by name and
memory changed before the database; 4 NaN and huge integers stored as invalid JSON; 5 YAML
integer keys and unsaved Secret patches; 8 unchecked namespaces, names, labels, annotations and
Secret patches; 10 secret values echoed through kubectl's last-applied annotation.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

import pytest
from apikit import (
    PODS,
    SECRETS,
    SERVICE_ACCOUNTS,
    Client,
    assert_status,
    cluster_of,
    create_pod,
    pod_manifest,
    wait_for,
)

from kubesim_images.daemon.validation import MAX_CONTAINERS, TOTAL_ANNOTATION_SIZE
from kubesim_images.podworkers import PodWorkers

PAUSE = "registry.k8s.io/pause:3.10"  # preloaded: present on the node from the start
MERGE = {"Content-Type": "application/merge-patch+json"}
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def _strict(text: str) -> Any:
    """Parse as Go would: NaN and Infinity are not JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


async def _phase(client: Client, name: str) -> str:
    doc = await (await client.get(f"{PODS}/{name}")).json()
    return str(doc["status"]["phase"])


class TestStatusRenderingIsLinear:
    """Finding 1: each ready container re-rendered and re-saved the status of all N."""

    async def test_a_pod_of_many_present_images_saves_its_status_a_few_times(self, client):
        state = cluster_of(client).state
        saves: list[str] = []
        original = state.put_pod_status

        def counting(uid: str, doc: Any) -> None:
            saves.append(uid)
            original(uid, doc)

        state.put_pod_status = counting  # type: ignore[method-assign]
        images = [PAUSE] * MAX_CONTAINERS
        await create_pod(client, pod_manifest("wide", *images, policy="IfNotPresent"))
        await wait_for(lambda: _running(client, "wide"))
        # One save at creation and one per loop turn that changed it; before: one per container.
        assert len(saves) < 10, len(saves)

    async def test_more_containers_than_the_limit_are_refused(self, client):
        resp = await client.post(PODS, json=pod_manifest("huge", *[PAUSE] * (MAX_CONTAINERS + 1)))
        assert_status(
            await resp.json(),
            422,
            "Invalid",
            message_contains=f"spec.containers: Too many: {MAX_CONTAINERS + 1}: must have at most",
        )


async def _running(client: Client, name: str) -> bool:
    return await _phase(client, name) == "Running"


class _FailingDb:
    """A connection whose writes fail as a full disk's do; reads pass through."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.split(maxsplit=1)[0].upper() in {"INSERT", "DELETE", "UPDATE"}:
            raise sqlite3.OperationalError("database or disk is full")
        return self.real.execute(sql, *args)


class TestWritesAreDurableAndAtomic:
    """Finding 2: writes keyed by UID; memory changes only after the commit."""

    async def test_a_delete_racing_a_create_of_the_same_name_keeps_the_new_pod(
        self, client, monkeypatch
    ):
        cluster = cluster_of(client)
        await create_pod(client, pod_manifest("p", "nginx:1.27"))
        # Hold the delete where it waits for the old pod's worker to stop.
        release = asyncio.Event()
        workers = cluster.node.workers
        remove = PodWorkers.remove

        async def held_remove(self: PodWorkers, uid: str) -> Any:
            if self is workers:
                await release.wait()
            return await remove(self, uid)

        monkeypatch.setattr(PodWorkers, "remove", held_remove)
        # Forced (--grace-period=0 --force): the object goes at once, the kill follows.
        deleting = asyncio.ensure_future(
            client.delete(f"{PODS}/p", params={"gracePeriodSeconds": "0"})
        )

        async def gone() -> bool:
            return (await client.get(f"{PODS}/p")).status == 404

        await wait_for(gone)
        new = await create_pod(client, pod_manifest("p", PAUSE))
        release.set()
        assert (await deleting).status == 200
        rows = cluster.state.objects("Pod")
        assert [r["metadata"]["uid"] for r in rows] == [new["metadata"]["uid"]]
        assert set(cluster.state.pod_statuses()) == {new["metadata"]["uid"]}
        assert (await client.get(f"{PODS}/p")).status == 200

    async def test_a_refused_write_changes_nothing_and_answers_a_status(self, client):
        cluster = cluster_of(client)
        await create_pod(client, pod_manifest("keep", PAUSE))
        await client.post(SECRETS, json={"metadata": {"name": "s"}, "stringData": {"k": "v"}})
        before_secret = await (await client.get(f"{SECRETS}/s")).json()
        real = cluster.state._db
        cluster.state._db = _FailingDb(real)  # type: ignore[assignment]
        try:
            answers = [
                await client.post(PODS, json=pod_manifest("new", PAUSE)),
                await client.delete(f"{PODS}/keep"),
                await client.patch(
                    f"{PODS}/keep", json={"metadata": {"labels": {"a": "b"}}}, headers=MERGE
                ),
                await client.patch(f"{SECRETS}/s", json={"stringData": {"k": "w"}}, headers=MERGE),
                await client.post(SERVICE_ACCOUNTS, json={"metadata": {"name": "sa"}}),
            ]
            for resp in answers:
                assert_status(await resp.json(), 503, "ServiceUnavailable", message_contains="disk")
        finally:
            cluster.state._db = real
        assert (await client.get(f"{PODS}/new")).status == 404
        keep = await (await client.get(f"{PODS}/keep")).json()
        assert "labels" not in keep["metadata"]
        assert await (await client.get(f"{SECRETS}/s")).json() == before_secret
        assert (await client.get(f"{SERVICE_ACCOUNTS}/sa")).status == 404
        stored = {p["metadata"]["name"] for p in cluster.state.objects("Pod")}
        assert stored == {"keep"}


class TestStrictJson:
    """Finding 4: NaN, Infinity and integers outside int64 were stored, then served as invalid
    JSON (kubectl showed `items: []`)."""

    @pytest.mark.parametrize(
        "raw",
        [
            '{"metadata": {"name": "n"}, "spec": {"containers": [], "x": NaN}}',
            '{"metadata": {"name": "n"}, "spec": {"x": Infinity}}',
            '{"metadata": {"name": "n"}, "spec": {"x": -Infinity}}',
            '{"metadata": {"name": "n"}, "spec": {"x": 1e999}}',
            '{"metadata": {"name": "n"}, "spec": {"x": 1234567890123456789012345}}',
            '{"metadata": {"name": "n"}, "spec": {"x": -9223372036854775809}}',
        ],
    )
    async def test_json_numbers_go_cannot_hold_are_refused(self, client, raw):
        resp = await client.post(PODS, data=raw, headers={"Content-Type": "application/json"})
        assert_status(await resp.json(), 400, "BadRequest")
        listed = await client.get(PODS)
        assert _strict(await listed.text())["items"] == []

    @pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1234567890123456789012345"])
    async def test_yaml_numbers_json_cannot_hold_are_refused(self, client, value):
        body = f"metadata:\n  name: n\nspec:\n  x: {value}\n  containers: [{{name: c, image: {PAUSE}}}]\n"
        resp = await client.post(PODS, data=body, headers={"Content-Type": "application/yaml"})
        assert_status(await resp.json(), 400, "BadRequest")

    async def test_the_largest_int64_is_kept(self, client):
        body = pod_manifest("n", PAUSE, activeDeadlineSeconds=2**63 - 1)
        doc = await create_pod(client, body)
        assert doc["spec"]["activeDeadlineSeconds"] == 2**63 - 1


class TestYamlKeysAndSavedPatches:
    """Finding 5: YAML integer keys gave a 500; a Secret PATCH changed memory but not disk."""

    async def test_yaml_integer_keys_become_strings_as_kubectl_sends_them(self, client):
        body = (
            "metadata:\n  name: n\n  labels:\n    1: one\n    2.5: half\n"
            f"spec:\n  containers: [{{name: c, image: {PAUSE}}}]\n"
        )
        resp = await client.post(PODS, data=body, headers={"Content-Type": "application/yaml"})
        doc = await resp.json()
        assert resp.status == 201, doc
        assert doc["metadata"]["labels"] == {"1": "one", "2.5": "half"}

    @pytest.mark.parametrize("path", [SECRETS, SERVICE_ACCOUNTS])
    async def test_a_yaml_patch_with_integer_keys_is_saved(self, client, path):
        await client.post(path, json={"metadata": {"name": "o"}})
        patch = "metadata:\n  labels:\n    7: seven\n"
        headers = {"Content-Type": "application/apply-patch+yaml"}
        resp = await client.patch(f"{path}/o?fieldManager=t", data=patch, headers=headers)
        doc = await resp.json()
        assert resp.status == 200, doc
        kind = "Secret" if path == SECRETS else "ServiceAccount"
        saved = {d["metadata"]["name"]: d for d in cluster_of(client).state.objects(kind)}
        assert saved["o"]["metadata"]["labels"] == {"7": "seven"}
        assert saved["o"]["metadata"]["resourceVersion"] == doc["metadata"]["resourceVersion"]
        again = await client.patch(
            f"{path}/o", json={"metadata": {"labels": {"b": "c"}}}, headers=MERGE
        )
        assert again.status == 200, await again.text()


class TestNamesAndMetadata:
    """Finding 8: namespaces, secret and account names, labels, annotations, Secret patches."""

    @pytest.mark.parametrize("namespace", ["Upper", "a.b", "x" * 64, "under_score"])
    @pytest.mark.parametrize("resource", ["pods", "secrets", "serviceaccounts"])
    async def test_namespaces_in_paths_are_rfc1123_labels(self, client, namespace, resource):
        # No such namespace can exist: NamespaceLifecycle admission answers first, as the
        # apiserver's does, and nothing is created.
        body: dict[str, Any] = {"metadata": {"name": "n"}}
        if resource == "pods":
            body = pod_manifest("n", PAUSE)
        resp = await client.post(f"/api/v1/namespaces/{namespace}/{resource}", json=body)
        assert_status(
            await resp.json(),
            404,
            "NotFound",
            message_contains=f'namespaces "{namespace}" not found',
        )
        listed = await (await client.get("/api/v1/namespaces")).json()
        assert namespace not in {n["metadata"]["name"] for n in listed["items"]}

    @pytest.mark.parametrize("path", [SECRETS, SERVICE_ACCOUNTS])
    @pytest.mark.parametrize("name", ["Bad", "a_b", "..", "-a", "x" * 254])
    async def test_secret_and_account_names_are_rfc1123_subdomains(self, client, path, name):
        resp = await client.post(path, json={"metadata": {"name": name}})
        body = await resp.json()
        assert_status(body, 422, "Invalid", message_contains="metadata.name: Invalid value")
        assert "RFC 1123 subdomain" in body["message"] or "no more than 253" in body["message"]

    @pytest.mark.parametrize(
        ("labels", "text"),
        [
            ({"bad key": "v"}, "name part must consist of alphanumeric characters"),
            ({"k": "bad value"}, "a valid label must be an empty string or consist of"),
            ({"k" * 64: "v"}, "name part must be no more than 63 characters"),
            ({"k": "v" * 64}, "must be no more than 63 characters"),
            ({"Bad_Prefix/k": "v"}, "prefix part a lowercase RFC 1123 subdomain"),
            ({"a/b/c": "v"}, "a qualified name must consist of"),
        ],
    )
    async def test_labels_are_checked_as_the_api_server_does(self, client, labels, text):
        resp = await client.post(PODS, json=pod_manifest("n", PAUSE, labels=labels))
        assert_status(await resp.json(), 422, "Invalid", message_contains=text)
        resp = await client.post(SECRETS, json={"metadata": {"name": "s", "labels": labels}})
        assert_status(await resp.json(), 422, "Invalid", message_contains=text)

    async def test_annotations_are_limited_to_256_kib(self, client):
        big = {"a": "x" * TOTAL_ANNOTATION_SIZE}
        body = pod_manifest("n", PAUSE)
        body["metadata"]["annotations"] = big
        resp = await client.post(PODS, json=body)
        assert_status(
            await resp.json(),
            422,
            "Invalid",
            message_contains="metadata.annotations: Too long: must have at most 262144 bytes",
        )
        await create_pod(client, pod_manifest("ok", PAUSE))
        resp = await client.patch(
            f"{PODS}/ok", json={"metadata": {"annotations": big}}, headers=MERGE
        )
        assert_status(await resp.json(), 422, "Invalid", message_contains="Too long")

    async def test_a_secret_patch_gets_the_checks_of_a_create(self, client):
        await client.post(SECRETS, json={"metadata": {"name": "s"}, "stringData": {"k": "v"}})
        for patch, text in (
            ({"data": {"k": "not base64!"}}, "illegal base64 data"),
            ({"type": "kubernetes.io/dockerconfigjson"}, "field is immutable"),
            ({"metadata": {"labels": {"bad key": "v"}}}, "name part must consist"),
        ):
            resp = await client.patch(f"{SECRETS}/s", json=patch, headers=MERGE)
            assert_status(await resp.json(), 422, "Invalid", message_contains=text)
        table = await client.get(
            f"{SECRETS}/s", headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
        )
        assert table.status == 200


class TestFieldsKeepTheirGoTypes:
    """Finding 8: any value could be stored in any field, breaking clients that decode it."""

    @pytest.mark.parametrize(
        ("path", "patch", "text"),
        [
            (SERVICE_ACCOUNTS, {"secrets": 5}, "ServiceAccount.secrets of type"),
            (SERVICE_ACCOUNTS, {"secrets": ["x"]}, "v1.ObjectReference"),
            (SERVICE_ACCOUNTS, {"automountServiceAccountToken": "yes"}, "of type bool"),
            (SECRETS, {"immutable": 1}, "Secret.immutable of type bool"),
            (SECRETS, {"data": ["a"]}, "Secret.data of type"),
            (SECRETS, {"metadata": {"finalizers": 5}}, "ObjectMeta.metadata.finalizers"),
            (SERVICE_ACCOUNTS, {"metadata": {"ownerReferences": "x"}}, "[]v1.OwnerReference"),
        ],
    )
    async def test_a_field_of_the_wrong_type_is_refused(self, client, path, patch, text):
        await client.post(path, json={"metadata": {"name": "o"}})
        resp = await client.patch(f"{path}/o", json=patch, headers=MERGE)
        assert_status(await resp.json(), 400, "BadRequest", message_contains=text)
        for url in (path, "/api/v1/" + path.rsplit("/", 1)[1]):
            listed = await client.get(url, headers={"Accept": TABLE})
            assert listed.status == 200, await listed.text()

    @pytest.mark.parametrize(
        ("spec", "text"),
        [
            ({"activeDeadlineSeconds": "x"}, "PodSpec.spec.activeDeadlineSeconds of type int64"),
            ({"activeDeadlineSeconds": 1.5}, "cannot unmarshal number into"),
            ({"hostNetwork": "yes"}, "PodSpec.spec.hostNetwork of type bool"),
            ({"nodeSelector": {"a": 1}}, "of type map[string]string"),
            ({"volumes": {}}, "of type []v1.Volume"),
        ],
    )
    async def test_a_pod_field_of_the_wrong_type_is_refused(self, client, spec, text):
        resp = await client.post(PODS, json=pod_manifest("p", PAUSE, **spec))
        body = await resp.json()
        assert_status(body, 400, "BadRequest", message_contains=text)
        assert body["message"].startswith('Pod in version "v1" cannot be handled as a Pod: ')
        assert (await client.get(f"{PODS}/p")).status == 404

    async def test_a_container_field_of_the_wrong_type_is_refused(self, client):
        body = pod_manifest("p", PAUSE)
        body["spec"]["containers"][0]["command"] = ["sh", 1]
        resp = await client.post(PODS, json=body)
        assert_status(
            await resp.json(),
            400,
            "BadRequest",
            message_contains="Container.spec.containers.command of type []string",
        )

    @pytest.mark.parametrize("path", [SECRETS, SERVICE_ACCOUNTS])
    async def test_unknown_fields_are_dropped(self, client, path):
        await client.post(path, json={"metadata": {"name": "o"}})
        resp = await client.patch(f"{path}/o", json={"spec": {"x": 1}, "zz": 2}, headers=MERGE)
        doc = await resp.json()
        assert resp.status == 200, doc
        assert "spec" not in doc
        assert "zz" not in doc


class TestLastAppliedIsRedacted:
    """Finding 10: `kubectl apply` of a Secret copies its values into an annotation."""

    async def test_values_in_the_last_applied_annotation_are_emptied(self, client):
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"password": "aHVudGVyMg=="},
            "stringData": {"token": "tok-123"},
        }
        annotation = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(manifest)}
        body = {**manifest, "metadata": {"name": "s", "annotations": annotation}}
        created = await client.post(SECRETS, json=body)
        assert created.status == 201
        answers = [
            await created.text(),
            await (await client.get(f"{SECRETS}/s")).text(),
            await (await client.get(SECRETS)).text(),
            await (await client.get("/api/v1/secrets")).text(),
        ]
        for text in answers:
            assert "aHVudGVyMg==" not in text
            assert "tok-123" not in text
        doc = await (await client.get(f"{SECRETS}/s")).json()
        applied = json.loads(
            doc["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        )
        assert applied["data"] == {"password": ""}
        assert applied["stringData"] == {"token": ""}
        assert applied["metadata"] == {"name": "s"}
