"""Pods through the API: create (JSON, YAML, no content type), defaulting, container statuses as
the kubelet reports them, `kubectl get` Tables, selectors, delete, patch and watch.

Pod workers run on the real clock with a 200ms requeue (1s where a test must see the short-lived
`ErrImagePull` before `ImagePullBackOff`), so state changes are awaited by polling with a
deadline of a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
import yaml
from apikit import (
    PODS,
    TABLE,
    Client,
    PodWatch,
    assert_status,
    create_pod,
    pod_manifest,
    pod_waiting_reason,
    wait_for,
)

REPO_DIGEST = re.compile(r"^docker\.io/library/nginx@sha256:[0-9a-f]{64}$")
SLOW_REQUEUE = {"errorRequeue": "1s", "jitterFactor": 0}
# A failed sync is not retried within a test: ErrImagePull stays until the test reads it.
NO_REQUEUE = {"errorRequeue": "1h", "jitterFactor": 0}


async def _get(client: Client, name: str) -> dict[str, Any]:
    resp = await client.get(f"{PODS}/{name}")
    assert resp.status == 200
    return await resp.json()


async def _table_row(client: Client, name: str) -> dict[str, str]:
    resp = await client.get(f"{PODS}/{name}", headers={"Accept": TABLE})
    table = await resp.json()
    assert table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    (row,) = table["rows"]
    return dict(zip(names, row["cells"], strict=True))


class TestCreate:
    """A pod is accepted as JSON, as YAML and with no content type at all."""

    async def test_json(self, client: Client) -> None:
        doc = await create_pod(client, pod_manifest("web", "busybox:1.36", labels={"app": "web"}))
        assert doc["kind"] == "Pod"
        assert doc["apiVersion"] == "v1"
        meta = doc["metadata"]
        assert (meta["name"], meta["namespace"], meta["labels"]) == (
            "web",
            "default",
            {"app": "web"},
        )
        assert meta["uid"]
        assert meta["resourceVersion"].isdigit()
        assert doc["spec"]["nodeName"] == "kubesim-node"
        assert doc["spec"]["serviceAccountName"] == "default"
        assert doc["status"]["phase"] == "Pending"

    async def test_yaml(self, client: Client) -> None:
        body = yaml.safe_dump(pod_manifest("from-yaml", "busybox:1.36")).encode()
        resp = await client.post(PODS, data=body, headers={"Content-Type": "application/yaml"})
        assert resp.status == 201
        assert (await resp.json())["metadata"]["name"] == "from-yaml"
        assert (await _get(client, "from-yaml"))["spec"]["containers"][0]["image"] == "busybox:1.36"

    async def test_no_content_type(self, client: Client) -> None:
        body = json.dumps(pod_manifest("bare", "busybox:1.36")).encode()
        resp = await client.post(PODS, data=body, skip_auto_headers=["Content-Type"])
        assert "Content-Type" not in resp.request_info.headers
        assert resp.status == 201
        assert (await resp.json())["metadata"]["name"] == "bare"

    async def test_generate_name(self, client: Client) -> None:
        body = pod_manifest("", "busybox:1.36")
        body["metadata"] = {"generateName": "web-"}
        doc = await create_pod(client, body)
        assert re.fullmatch(r"web-[0-9a-f]{5}", doc["metadata"]["name"])
        assert (await client.get(f"{PODS}/{doc['metadata']['name']}")).status == 200

    async def test_with_the_official_python_client(self, client: Client) -> None:
        kubernetes = pytest.importorskip("kubernetes")
        configuration = kubernetes.client.Configuration()
        configuration.host = str(client.make_url("")).rstrip("/")

        def create_and_read() -> tuple[str, str]:
            with kubernetes.client.ApiClient(configuration) as api_client:
                core = kubernetes.client.CoreV1Api(api_client)
                created = core.create_namespaced_pod(
                    "default", pod_manifest("from-client", "nginx:1.27")
                )
                read = core.read_namespaced_pod("from-client", "default")
                return created.metadata.name, read.spec.containers[0].image_pull_policy

        # The client blocks; the server runs on this loop, so the client runs in a thread.
        name, policy = await asyncio.to_thread(create_and_read)
        assert (name, policy) == ("from-client", "IfNotPresent")


class TestDefaulting:
    """`imagePullPolicy` is defaulted once at creation and stored (SetDefaults_Container)."""

    @pytest.mark.parametrize(
        ("image", "policy"),
        [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ],
    )
    async def test_default_policy(self, client: Client, image: str, policy: str) -> None:
        created = await create_pod(client, pod_manifest("p", image))
        assert created["spec"]["containers"][0]["imagePullPolicy"] == policy
        stored = await _get(client, "p")
        assert stored["spec"]["containers"][0]["imagePullPolicy"] == policy

    async def test_a_written_policy_is_kept(self, client: Client) -> None:
        doc = await create_pod(client, pod_manifest("p", "nginx", policy="IfNotPresent"))
        assert doc["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"

    async def test_init_containers_are_defaulted_too(self, client: Client) -> None:
        doc = await create_pod(client, pod_manifest("p", "nginx:1.27", init=("busybox",)))
        assert doc["spec"]["initContainers"][0]["imagePullPolicy"] == "Always"
        assert doc["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"

    async def test_always_pull_images_admission_forces_always(self, api) -> None:
        client = await api(admission={"alwaysPullImages": True})
        body = pod_manifest("p", "nginx:1.27", "redis:7.4", init=("busybox:1.36",))
        body["spec"]["containers"][1]["imagePullPolicy"] = "IfNotPresent"
        doc = await create_pod(client, body)
        policies = [
            c["imagePullPolicy"] for c in doc["spec"]["initContainers"] + doc["spec"]["containers"]
        ]
        assert policies == ["Always", "Always", "Always"]


class TestContainerStatuses:
    """`status.containerStatuses` carries the kubelet's waiting reasons, then `running`."""

    async def test_missing_image_is_err_image_pull_then_image_pull_back_off(self, api) -> None:
        client = await api(sync=SLOW_REQUEUE)
        async with PodWatch(client, "bad") as watch:
            await create_pod(client, pod_manifest("bad", "example.com/missing:v1"))
            seen = await watch.reasons_until("containerStatuses", "ImagePullBackOff")
        assert "ErrImagePull" in seen
        assert seen.index("ErrImagePull") < seen.index("ImagePullBackOff")
        (status,) = (await _get(client, "bad"))["status"]["containerStatuses"]
        # The kubelet (1.32+) appends the last pull error to the back-off message.
        assert status["state"]["waiting"]["message"].startswith(
            'Back-off pulling image "example.com/missing:v1": ErrImagePull: '
        )
        assert status["state"]["waiting"]["message"].endswith("example.com/missing:v1: not found")
        assert status["ready"] is False
        assert status["imageID"] == ""

    async def test_err_image_pull_message_is_containerds(self, api) -> None:
        client = await api(sync=NO_REQUEUE)
        await create_pod(client, pod_manifest("bad", "example.com/missing:v1"))

        async def pull_error() -> str | None:
            (cs,) = (await _get(client, "bad"))["status"]["containerStatuses"]
            waiting = cs["state"].get("waiting", {})
            return waiting.get("message") if waiting.get("reason") == "ErrImagePull" else None

        message = await wait_for(pull_error)
        assert "failed to pull and unpack image" in message
        assert "example.com/missing:v1: not found" in message

    async def test_never_and_absent_is_err_image_never_pull(self, client: Client) -> None:
        await create_pod(client, pod_manifest("never", "redis:7.4", policy="Never"))

        async def never_pull() -> bool:
            return await pod_waiting_reason(client, "never") == ["ErrImageNeverPull"]

        await wait_for(never_pull)
        (cs,) = (await _get(client, "never"))["status"]["containerStatuses"]
        assert cs["state"]["waiting"]["message"] == (
            'Container image "redis:7.4" is not present with pull policy of Never'
        )

    async def test_a_good_image_runs_with_its_repo_digest(self, client: Client) -> None:
        await create_pod(client, pod_manifest("web", "nginx:1.27"))

        async def running() -> dict[str, Any] | None:
            doc = await _get(client, "web")
            (cs,) = doc["status"]["containerStatuses"]
            return doc if "running" in cs["state"] else None

        doc = await wait_for(running)
        (cs,) = doc["status"]["containerStatuses"]
        assert REPO_DIGEST.match(cs["imageID"]), cs["imageID"]
        assert cs["ready"] is True
        assert cs["started"] is True
        assert cs["containerID"].startswith("containerd://")
        assert cs["state"]["running"]["startedAt"]
        assert doc["status"]["phase"] == "Running"
        conditions = {c["type"]: c["status"] for c in doc["status"]["conditions"]}
        assert conditions["Ready"] == conditions["ContainersReady"] == "True"

    async def test_a_preloaded_image_with_never_runs(self, client: Client) -> None:
        await create_pod(
            client, pod_manifest("pause", "registry.k8s.io/pause:3.10", policy="Never")
        )

        async def running() -> bool:
            return await pod_waiting_reason(client, "pause") == [None]

        await wait_for(running)

    async def test_containers_fail_independently(self, client: Client) -> None:
        await create_pod(client, pod_manifest("mixed", "example.com/missing:v1", "busybox:1.36"))

        async def settled() -> list[str | None] | None:
            reasons = await pod_waiting_reason(client, "mixed")
            return reasons if reasons[1] is None and reasons[0] != "ContainerCreating" else None

        reasons = await wait_for(settled)
        assert reasons[0] in {"ErrImagePull", "ImagePullBackOff"}
        doc = await _get(client, "mixed")
        assert doc["status"]["phase"] == "Pending"
        ready = next(c for c in doc["status"]["conditions"] if c["type"] == "Ready")
        assert ready["message"] == "containers with unready status: [c0]"

    async def test_init_container_failure_holds_the_app_containers(self, api) -> None:
        client = await api(sync=SLOW_REQUEUE)
        async with PodWatch(client, "init") as watch:
            await create_pod(
                client, pod_manifest("init", "busybox:1.36", init=("example.com/missing:v1",))
            )
            seen = await watch.reasons_until("initContainerStatuses", "ImagePullBackOff")
        assert "ErrImagePull" in seen
        doc = await _get(client, "init")
        (app,) = doc["status"]["containerStatuses"]
        assert app["state"]["waiting"]["reason"] == "PodInitializing"
        row = await _table_row(client, "init")
        assert row["Status"] == "Init:ImagePullBackOff"
        assert row["Ready"] == "0/1"


class TestTables:
    """`Accept: ...;as=Table` gives kubectl's `get` columns, STATUS computed as its printer."""

    async def test_pod_table_shows_the_waiting_reasons_and_ready_count(self, api) -> None:
        # No requeue: both failing pods stay in ErrImagePull while the table is polled.
        client = await api(sync=NO_REQUEUE)
        await create_pod(client, pod_manifest("good", "nginx:1.27"))
        await create_pod(client, pod_manifest("bad", "example.com/missing:v1"))
        await create_pod(client, pod_manifest("never", "redis:7.4", policy="Never"))
        await create_pod(client, pod_manifest("init", "busybox:1.36", init=("example.com/x:1",)))

        async def statuses() -> dict[str, tuple[str, str]] | None:
            resp = await client.get(PODS, headers={"Accept": TABLE})
            table = await resp.json()
            columns = [c["name"] for c in table["columnDefinitions"]]
            rows = {
                r["cells"][0]: dict(zip(columns, r["cells"], strict=True)) for r in table["rows"]
            }
            out = {name: (row["Status"], row["Ready"]) for name, row in rows.items()}
            wanted = {
                "good": ("Running", "1/1"),
                "bad": ("ErrImagePull", "0/1"),
                "never": ("ErrImageNeverPull", "0/1"),
                "init": ("Init:ErrImagePull", "0/1"),
            }
            return out if out == wanted else None

        await wait_for(statuses)

    async def test_table_shape(self, client: Client) -> None:
        await create_pod(client, pod_manifest("web", "busybox:1.36"))
        table = await (await client.get(PODS, headers={"Accept": TABLE})).json()
        assert table["apiVersion"] == "meta.k8s.io/v1"
        assert [c["name"] for c in table["columnDefinitions"]][:5] == [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
        ]
        (row,) = table["rows"]
        assert row["object"]["kind"] == "PartialObjectMetadata"
        assert row["object"]["metadata"]["name"] == "web"
        assert re.fullmatch(r"\d+s", row["cells"][4])


class TestList:
    """Listing with field and label selectors, as kubectl sends them."""

    @pytest.fixture
    async def three(self, client: Client) -> Client:
        await create_pod(client, pod_manifest("web-1", "busybox:1.36", labels={"app": "web"}))
        await create_pod(
            client, pod_manifest("web-2", "busybox:1.36", labels={"app": "web", "tier": "fe"})
        )
        await create_pod(client, pod_manifest("db", "busybox:1.36", labels={"app": "db"}))
        return client

    @staticmethod
    async def _names(client: Client, path: str = PODS, **params: str) -> list[str]:
        resp = await client.get(path, params=params)
        assert resp.status == 200
        doc = await resp.json()
        assert doc["kind"] == "PodList"
        assert doc["metadata"]["resourceVersion"].isdigit()
        return sorted(p["metadata"]["name"] for p in doc["items"])

    async def test_all(self, three: Client) -> None:
        assert await self._names(three) == ["db", "web-1", "web-2"]
        assert await self._names(three, "/api/v1/pods") == ["db", "web-1", "web-2"]
        assert await self._names(three, "/api/v1/namespaces/other/pods") == []

    @pytest.mark.parametrize(
        ("selector", "names"),
        [
            ("metadata.name=db", ["db"]),
            ("metadata.name==web-1", ["web-1"]),
            ("metadata.name!=db", ["web-1", "web-2"]),
            ("metadata.name=nope", []),
            ("metadata.namespace=default,spec.nodeName=kubesim-node", ["db", "web-1", "web-2"]),
        ],
    )
    async def test_field_selector(self, three: Client, selector: str, names: list[str]) -> None:
        assert await self._names(three, fieldSelector=selector) == names

    @pytest.mark.parametrize(
        ("selector", "names"),
        [
            ("app=web", ["web-1", "web-2"]),
            ("app=web,tier=fe", ["web-2"]),
            ("app!=web", ["db"]),
            ("app in (db, web)", ["db", "web-1", "web-2"]),
            ("tier", ["web-2"]),
            ("!tier", ["db", "web-1"]),
        ],
    )
    async def test_label_selector(self, three: Client, selector: str, names: list[str]) -> None:
        assert await self._names(three, labelSelector=selector) == names

    async def test_both_selectors(self, three: Client) -> None:
        names = await self._names(
            three, labelSelector="app=web", fieldSelector="metadata.name=web-2"
        )
        assert names == ["web-2"]


class TestDelete:
    """DELETE answers with the Pod (as kube-apiserver does), then the pod is gone."""

    async def test_delete_returns_the_pod(self, client: Client) -> None:
        created = await create_pod(client, pod_manifest("gone", "busybox:1.36"))
        resp = await client.delete(f"{PODS}/gone")
        assert resp.status == 200
        doc = await resp.json()
        assert doc["kind"] == "Pod"
        assert doc["metadata"]["uid"] == created["metadata"]["uid"]
        assert doc["metadata"]["deletionTimestamp"]
        resp = await client.get(f"{PODS}/gone")
        assert resp.status == 404
        assert_status(await resp.json(), 404, "NotFound", message_contains='pods "gone" not found')
        assert (await client.delete(f"{PODS}/gone")).status == 404

    async def test_a_deleted_name_can_be_reused(self, client: Client) -> None:
        first = await create_pod(client, pod_manifest("again", "example.com/missing:v1"))
        assert (await client.delete(f"{PODS}/again")).status == 200
        second = await create_pod(client, pod_manifest("again", "busybox:1.36"))
        assert second["metadata"]["uid"] != first["metadata"]["uid"]

        async def running() -> bool:
            return await pod_waiting_reason(client, "again") == [None]

        await wait_for(running)


class TestPatch:
    """Labels and annotations may change; the spec may not (422)."""

    async def test_merge_patch_of_labels(self, client: Client) -> None:
        await create_pod(client, pod_manifest("p", "busybox:1.36", labels={"app": "web", "x": "1"}))
        resp = await client.patch(
            f"{PODS}/p",
            json={"metadata": {"labels": {"tier": "fe", "x": None}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert resp.status == 200
        assert (await resp.json())["metadata"]["labels"] == {"app": "web", "tier": "fe"}
        assert (await _get(client, "p"))["metadata"]["labels"] == {"app": "web", "tier": "fe"}
        names = await TestList._names(client, labelSelector="tier=fe")
        assert names == ["p"]

    async def test_json_patch_of_annotations(self, client: Client) -> None:
        await create_pod(client, pod_manifest("p", "busybox:1.36"))
        ops = [{"op": "add", "path": "/metadata/annotations", "value": {"note": "hi"}}]
        resp = await client.patch(
            f"{PODS}/p",
            data=json.dumps(ops),
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert resp.status == 200
        assert (await _get(client, "p"))["metadata"]["annotations"] == {"note": "hi"}

    @pytest.mark.parametrize(
        ("patch", "field"),
        [
            ({"spec": {"containers": [{"name": "c0", "image": "nginx"}]}}, "spec"),
            ({"metadata": {"name": "renamed"}}, "metadata.name"),
        ],
    )
    async def test_merge_patch_of_anything_else_is_invalid(
        self, client: Client, patch: dict[str, Any], field: str
    ) -> None:
        await create_pod(client, pod_manifest("p", "busybox:1.36"))
        resp = await client.patch(
            f"{PODS}/p", json=patch, headers={"Content-Type": "application/merge-patch+json"}
        )
        assert resp.status == 422
        body = await resp.json()
        assert_status(body, 422, "Invalid")
        assert [c["field"] for c in body["details"]["causes"]] == [field]
        assert (await _get(client, "p"))["spec"]["containers"][0]["image"] == "busybox:1.36"


class TestWatch:
    """`?watch=true` streams newline-delimited ADDED / MODIFIED / DELETED events."""

    async def test_watch_stream(self, client: Client) -> None:
        await create_pod(client, pod_manifest("before", "busybox:1.36"))
        resp = await client.get(PODS, params={"watch": "true", "timeoutSeconds": "10"})
        assert resp.status == 200
        events: list[tuple[str, str]] = []

        async def next_event() -> dict[str, Any]:
            async with asyncio.timeout(3):
                line = await resp.content.readline()
            assert line.endswith(b"\n")
            event = json.loads(line)
            assert event["object"]["kind"] == "Pod"
            events.append((event["type"], event["object"]["metadata"]["name"]))
            return event

        try:
            first = await next_event()
            assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "before")
            await create_pod(client, pod_manifest("during", "nginx:1.27"))
            while ("ADDED", "during") not in events:
                await next_event()
            # Status changes as the pull completes.
            while True:
                event = await next_event()
                statuses = event["object"]["status"]["containerStatuses"]
                if event["type"] == "MODIFIED" and "running" in statuses[0]["state"]:
                    break
            assert (await client.delete(f"{PODS}/during")).status == 200
            while ("DELETED", "during") not in events:
                await next_event()
        finally:
            resp.close()
        assert {kind for kind, _ in events} == {"ADDED", "MODIFIED", "DELETED"}

    async def test_watch_with_a_selector_filters_events(self, client: Client) -> None:
        resp = await client.get(
            PODS, params={"watch": "1", "labelSelector": "app=web", "timeoutSeconds": "10"}
        )
        try:
            await create_pod(client, pod_manifest("other", "busybox:1.36", labels={"app": "db"}))
            await create_pod(client, pod_manifest("web", "busybox:1.36", labels={"app": "web"}))
            async with asyncio.timeout(3):
                line = await resp.content.readline()
            event = json.loads(line)
            assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "web")
        finally:
            resp.close()

    async def test_watch_ends_at_timeout_seconds(self, client: Client) -> None:
        await create_pod(client, pod_manifest("p", "busybox:1.36"))
        async with asyncio.timeout(5):
            resp = await client.get(PODS, params={"watch": "true", "timeoutSeconds": "0.3"})
            body = await resp.read()
        lines = body.decode().splitlines()
        assert json.loads(lines[0])["type"] == "ADDED"
        assert all(json.loads(line)["type"] in {"ADDED", "MODIFIED"} for line in lines)

    async def test_watch_as_table(self, client: Client) -> None:
        await create_pod(client, pod_manifest("p", "busybox:1.36"))
        resp = await client.get(
            PODS, params={"watch": "true", "timeoutSeconds": "10"}, headers={"Accept": TABLE}
        )
        try:
            async with asyncio.timeout(3):
                event = json.loads(await resp.content.readline())
        finally:
            resp.close()
        assert event["type"] == "ADDED"
        assert event["object"]["kind"] == "Table"
        assert event["object"]["rows"][0]["cells"][0] == "p"


class TestSidecarTableRow:
    """printPod (v1.32) counts a started sidecar in READY's total and not as initialising."""

    async def test_a_running_sidecar_is_ready_and_does_not_hold_the_status(
        self, client: Client
    ) -> None:
        body = pod_manifest("mixed", "busybox:1.36", "redis:7.4", init=("busybox:1.36",) * 2)
        body["spec"]["containers"][1]["imagePullPolicy"] = "Never"  # redis is not on the node
        body["spec"]["initContainers"].append(
            {"name": "side", "image": "nginx:1.27", "restartPolicy": "Always"}
        )
        async with PodWatch(client, "mixed") as watch:
            await create_pod(client, body)

            def settled(pod: dict[str, Any]) -> bool:
                reasons = [
                    (cs.get("state") or {}).get("waiting", {}).get("reason")
                    for cs in pod["status"].get("containerStatuses") or []
                ]
                return reasons == [None, "ErrImageNeverPull"]

            await watch.until(settled)
        row = await _table_row(client, "mixed")
        assert (row["Ready"], row["Status"]) == ("2/3", "ErrImageNeverPull")
