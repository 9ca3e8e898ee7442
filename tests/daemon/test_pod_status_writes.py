"""Writes to pods/status: every patch type and PUT are taken, validated and saved as the
apiserver takes them, shown until the pod's kubelet writes its own status, and a condition the
kubelet does not own survives its writes (a readiness gate's)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from apikit import (
    PODS,
    TABLE,
    Client,
    PodWatch,
    assert_status,
    cluster_of,
    create_pod,
    pod_manifest,
)

from kubesim_images.state import StateError

GATE = {"type": "example.com/gate", "status": "True"}


async def _running(client: Client, name: str) -> dict[str, Any]:
    async with PodWatch(client, name) as watch:
        await create_pod(client, pod_manifest(name, "busybox:1.36"))
        return dict(await watch.until(lambda p: p if p["status"]["phase"] == "Running" else None))


def _types(pod: dict[str, Any]) -> list[str]:
    return [c["type"] for c in pod["status"].get("conditions") or []]


async def _patch(client: Client, name: str, body: Any, ctype: str, **params: str) -> Any:
    resp = await client.patch(
        f"{PODS}/{name}/status",
        data=json.dumps(body),
        headers={"Content-Type": ctype},
        params=params,
    )
    return resp.status, await resp.json()


class TestPatchTypes:
    """Each patch type of `kubectl patch --subresource=status` reaches the status."""

    @pytest.mark.parametrize(
        ("ctype", "body"),
        [
            ("application/merge-patch+json", {"status": {"conditions": [GATE]}}),
            ("application/strategic-merge-patch+json", {"status": {"conditions": [GATE]}}),
            (
                "application/json-patch+json",
                [{"op": "add", "path": "/status/conditions/-", "value": GATE}],
            ),
            (
                "application/apply-patch+yaml",
                {"apiVersion": "v1", "kind": "Pod", "status": {"conditions": [GATE]}},
            ),
        ],
    )
    async def test_a_condition_is_added(self, client: Client, ctype: str, body: Any) -> None:
        before = await _running(client, "web")
        params = {"fieldManager": "me"} if "apply" in ctype else {}
        code, pod = await _patch(client, "web", body, ctype, **params)
        assert code == 200, pod
        merged = "merge-patch+json" not in ctype or "strategic" in ctype
        if "json-patch" in ctype or merged:  # kept the kubelet's conditions, added one
            assert _types(pod) == [*_types(before), GATE["type"]]
        else:  # RFC 7386: the list is replaced
            assert _types(pod) == [GATE["type"]]
        assert int(pod["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
        assert pod["spec"] == before["spec"]
        got = await (await client.get(f"{PODS}/web")).json()
        assert got["status"] == pod["status"]

    async def test_labels_change_and_the_spec_does_not(self, client: Client) -> None:
        before = await _running(client, "web")
        body = {
            "metadata": {"labels": {"tier": "web"}},
            "spec": {"containers": [{"name": "c0", "image": "other:1"}]},
            "status": {"message": "hello", "qosClass": "Guaranteed"},
        }
        code, pod = await _patch(client, "web", body, "application/merge-patch+json")
        assert code == 200, pod
        assert pod["metadata"]["labels"] == {"tier": "web"}
        assert pod["spec"] == before["spec"]
        assert pod["status"]["message"] == "hello"
        assert pod["status"]["qosClass"] == "BestEffort"  # immutable

    async def test_a_dry_run_changes_nothing(self, client: Client) -> None:
        before = await _running(client, "web")
        body = {"status": {"conditions": [GATE]}}
        code, pod = await _patch(
            client, "web", body, "application/strategic-merge-patch+json", dryRun="All"
        )
        assert code == 200
        assert GATE["type"] in _types(pod)
        got = await (await client.get(f"{PODS}/web")).json()
        assert got == before

    async def test_put_replaces_with_optimistic_concurrency(self, client: Client) -> None:
        pod = await _running(client, "web")
        pod["status"]["conditions"].append(GATE)
        resp = await client.put(f"{PODS}/web/status", json=pod)
        written = await resp.json()
        assert resp.status == 200, written
        assert GATE["type"] in _types(written)
        resp = await client.put(f"{PODS}/web/status", json=pod)  # its version is now old
        assert_status(await resp.json(), 409, "Conflict", message_contains='pods "web"')


class TestRefusals:
    """Malformed status writes: the apiserver's texts, never a 500."""

    async def test_a_condition_type_that_is_no_qualified_name(self, client: Client) -> None:
        await _running(client, "web")
        body = {"status": {"conditions": [{"type": "not a name", "status": "True"}]}}
        code, doc = await _patch(client, "web", body, "application/merge-patch+json")
        assert_status(doc, 422, "Invalid", message_contains="status.conditions[0].Type: Invalid")
        assert code == 422

    @pytest.mark.parametrize(
        ("status", "text"),
        [
            ("x", "Go struct field Pod.status of type v1.PodStatus"),
            ({"conditions": {}}, "field PodStatus.status.conditions of type []v1.PodCondition"),
            ({"conditions": [{"type": 5}]}, "PodCondition.status.conditions.type of type string"),
            ({"phase": 1}, "PodStatus.status.phase of type string"),
        ],
    )
    async def test_values_of_the_wrong_type(self, client: Client, status: Any, text: str) -> None:
        await _running(client, "web")
        code, doc = await _patch(client, "web", {"status": status}, "application/merge-patch+json")
        assert code == 400
        assert_status(doc, 400, "BadRequest", message_contains=text)

    async def test_a_missing_pod(self, client: Client) -> None:
        code, doc = await _patch(client, "ghost", {}, "application/merge-patch+json")
        assert code == 404
        assert_status(doc, 404, "NotFound", message_contains='pods "ghost" not found')


class TestTheKubeletReconciles:
    """The kubelet's status manager writes its own status over a written one at its next sync,
    keeping the conditions it does not own."""

    async def test_a_written_phase_is_overwritten_and_a_gate_condition_kept(
        self, client: Client
    ) -> None:
        cluster_of(client).pods.status_sync_period = 0.01
        await _running(client, "web")
        body = {"status": {"phase": "Failed", "conditions": [GATE]}}
        async with PodWatch(client, "web") as watch:
            code, pod = await _patch(client, "web", body, "application/merge-patch+json")
            assert code == 200
            assert pod["status"]["phase"] == "Failed"
            await watch.until(lambda p: p["status"]["phase"] == "Failed")
            back = await watch.until(lambda p: p if p["status"]["phase"] == "Running" else None)
        assert GATE["type"] in _types(back)
        assert _types(back)[:-1] == [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ]

    async def test_a_write_the_kubelet_agrees_with_stays(self, client: Client) -> None:
        pods = cluster_of(client).pods
        pods.status_sync_period = 0.01
        await _running(client, "web")
        code, pod = await _patch(
            client,
            "web",
            [{"op": "add", "path": "/status/conditions/-", "value": GATE}],
            "application/json-patch+json",
        )
        assert code == 200
        uid = pod["metadata"]["uid"]
        pods._reconcile_status(uid)
        got = await (await client.get(f"{PODS}/web")).json()
        assert got["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]

    async def test_the_written_status_is_saved_with_the_pod(self, client: Client) -> None:
        cluster = cluster_of(client)
        await _running(client, "web")
        code, _ = await _patch(
            client,
            "web",
            {"status": {"conditions": [GATE]}},
            "application/strategic-merge-patch+json",
        )
        assert code == 200
        saved = [d for d in cluster.state.objects("Pod") if d["metadata"]["name"] == "web"]
        assert saved[0]["status"]["conditions"][-1] == GATE


class TestPersistence:
    """A status write is saved before memory changes: a refused save changes nothing."""

    async def test_a_refused_save_leaves_the_pod_as_it_was(
        self, client: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cluster = cluster_of(client)
        before = await _running(client, "web")

        def refuse(*_args: Any) -> None:
            raise StateError("disk full")

        monkeypatch.setattr(cluster.state, "put_object", refuse)
        code, doc = await _patch(
            client, "web", {"status": {"conditions": [GATE]}}, "application/merge-patch+json"
        )
        assert code == 503, doc
        monkeypatch.undo()
        got = await (await client.get(f"{PODS}/web")).json()
        assert got == before


class TestUnknownFields:
    """A status write is decoded as a Pod: unknown fields are dropped (with a warning), or
    refused with fieldValidation=Strict, whatever the patch type."""

    @pytest.mark.parametrize(
        ("ctype", "body"),
        [
            ("application/merge-patch+json", {"status": {"bogus": 1}}),
            ("application/json-patch+json", [{"op": "add", "path": "/status/bogus", "value": 1}]),
        ],
    )
    async def test_dropped_not_stored(self, client: Client, ctype: str, body: Any) -> None:
        await _running(client, "web")
        resp = await client.patch(
            f"{PODS}/web/status", data=json.dumps(body), headers={"Content-Type": ctype}
        )
        pod = await resp.json()
        assert resp.status == 200, pod
        assert "bogus" not in pod["status"]
        assert 'unknown field \\"status.bogus\\"' in resp.headers.get("Warning", "")
        assert "annotations" not in pod["metadata"]

    async def test_refused_when_strict(self, client: Client) -> None:
        await _running(client, "web")
        code, doc = await _patch(
            client,
            "web",
            {"status": {"bogus": 1}},
            "application/merge-patch+json",
            fieldValidation="Strict",
        )
        assert code == 400
        assert_status(doc, 400, "BadRequest", message_contains='unknown field "status.bogus"')


class TestReadinessGates:
    """A pod with readiness gates is Ready once its containers are and every gate's condition
    is True; the condition comes from a status write, and the kubelet syncs at once."""

    async def test_ready_follows_the_gate_condition(self, client: Client) -> None:
        cluster_of(client).pods.status_sync_period = 3600.0  # only the gated sync may act
        gate = "example.com/ready"
        body = pod_manifest("web", "busybox:1.36", readinessGates=[{"conditionType": gate}])
        async with PodWatch(client, "web") as watch:
            await create_pod(client, body)
            pod = await watch.until(lambda p: p if p["status"]["phase"] == "Running" else None)
        ready = {c["type"]: c for c in pod["status"]["conditions"]}["Ready"]
        assert ready["status"] == "False"
        assert ready["reason"] == "ReadinessGatesNotReady"
        assert ready["message"] == (
            f'corresponding condition of pod readiness gate "{gate}" does not exist.'
        )

        def ready_of(p: dict[str, Any]) -> dict[str, Any]:
            return dict({c["type"]: c for c in p["status"]["conditions"]}["Ready"])

        smp = "application/strategic-merge-patch+json"
        async with PodWatch(client, "web") as watch:
            written = {"type": gate, "status": "False"}
            code, _ = await _patch(client, "web", {"status": {"conditions": [written]}}, smp)
            assert code == 200
            shown = await watch.until(lambda p: p if "but False" in str(ready_of(p)) else None)
        assert ready_of(shown)["message"] == (
            f'the status of pod readiness gate "{gate}" is not "True", but False'
        )
        async with PodWatch(client, "web") as watch:
            written = {"type": gate, "status": "True"}
            code, _ = await _patch(client, "web", {"status": {"conditions": [written]}}, smp)
            assert code == 200
            await watch.until(lambda p: ready_of(p)["status"] == "True")
        resp = await client.get(
            PODS, headers={"Accept": TABLE}, params={"fieldSelector": "metadata.name=web"}
        )
        row = (await resp.json())["rows"][0]["cells"]
        assert row[-1] == "1/1"  # READINESS GATES


class TestDecodedAsGo:
    """A written status is what Go decodes: wrong types and malformed times refused, required
    fields at their zero value (so typed clients can read the pod back), identity fixed."""

    @pytest.mark.parametrize(
        ("status", "text"),
        [
            (
                {"containerStatuses": [{"name": 5}]},
                "Go struct field ContainerStatus.status.containerStatuses.name of type string",
            ),
            (
                {"containerStatuses": [{"name": "c", "restartCount": 1.5}]},
                (
                    "unmarshal number 1.5 into Go struct field ContainerStatus.status."
                    "containerStatuses.restartCount of type int32"
                ),
            ),
            (
                {"hostIPs": ["127.0.0.1"]},
                "unmarshal string into Go struct field PodStatus.status.hostIPs of type v1.HostIP",
            ),
            (
                {"startTime": "yesterday"},
                'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00"',
            ),
        ],
    )
    async def test_refused(self, client: Client, status: Any, text: str) -> None:
        await _running(client, "web")
        code, doc = await _patch(client, "web", {"status": status}, "application/merge-patch+json")
        assert code == 400, doc
        assert_status(doc, 400, "BadRequest", message_contains=text)

    async def test_required_fields_come_back_at_their_zero_value(self, client: Client) -> None:
        create = pod_manifest("nowhere", "busybox:1.36", nodeSelector={"x": "y"})
        await create_pod(client, create)  # no kubelet writes over what is written
        body = {"status": {"containerStatuses": [{"name": "c0"}]}}
        code, pod = await _patch(client, "nowhere", body, "application/merge-patch+json")
        assert code == 200, pod
        assert pod["status"]["containerStatuses"] == [
            {"name": "c0", "ready": False, "restartCount": 0, "image": "", "imageID": ""}
        ]

    @pytest.mark.parametrize(
        ("meta", "code", "text"),
        [
            ({"name": "other"}, 400, "the name of the object (other) does not match the name on"),
            ({"uid": "x"}, 422, 'metadata.uid: Invalid value: "x": field is immutable'),
        ],
    )
    async def test_identity_is_fixed(
        self, client: Client, meta: dict[str, str], code: int, text: str
    ) -> None:
        await _running(client, "web")
        got, doc = await _patch(client, "web", {"metadata": meta}, "application/merge-patch+json")
        assert got == code
        assert_status(doc, code, "BadRequest" if code == 400 else "Invalid", message_contains=text)
