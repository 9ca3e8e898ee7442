"""Events through the API: the kubelet's image events for a pod, as `kubectl describe` asks.

`kubectl describe pod` lists events with `fieldSelector=involvedObject.name=X,
involvedObject.namespace=NS,involvedObject.uid=UID`; the answer must hold that pod's kubelet
events only, with the kubelet's reasons and texts, and repeated identical events aggregated into
one with a `count`, as client-go's recorder does.
"""

from __future__ import annotations

from typing import Any

import pytest
from apikit import EVENTS, TABLE, Client, assert_status, create_pod, pod_manifest, wait_for

IMAGE = "example.com/missing:v1"


async def _events_for(client: Client, pod: dict[str, Any]) -> list[dict[str, Any]]:
    meta = pod["metadata"]
    selector = (
        f"involvedObject.name={meta['name']},involvedObject.namespace=default,"
        f"involvedObject.uid={meta['uid']}"
    )
    resp = await client.get(EVENTS, params={"fieldSelector": selector})
    assert resp.status == 200
    doc = await resp.json()
    assert doc["kind"] == "EventList"
    return doc["items"]


class TestPodEvents:
    """A failing pull: Pulling, Failed (the pull error), Failed `Error: ErrImagePull`, BackOff."""

    @pytest.fixture
    async def failing(self, client: Client) -> tuple[Client, dict[str, Any], dict[str, Any]]:
        bad = await create_pod(client, pod_manifest("bad", IMAGE))
        other = await create_pod(client, pod_manifest("other", "example.com/other:v1"))

        async def backed_off_twice() -> list[dict[str, Any]] | None:
            events = await _events_for(client, bad)
            back_off = [e for e in events if e["reason"] == "BackOff"]
            return events if back_off and back_off[0]["count"] >= 2 else None

        await wait_for(backed_off_twice)
        return client, bad, other

    async def test_the_kubelets_events_for_that_pod_only(self, failing) -> None:
        client, bad, _ = failing
        events = await _events_for(client, bad)
        assert {e["involvedObject"]["name"] for e in events} == {"bad"}
        assert {e["involvedObject"]["uid"] for e in events} == {bad["metadata"]["uid"]}
        messages = {(e["type"], e["reason"], e["message"]) for e in events}
        assert ("Normal", "Pulling", f'Pulling image "{IMAGE}"') in messages
        assert ("Warning", "Failed", "Error: ErrImagePull") in messages
        assert ("Normal", "BackOff", f'Back-off pulling image "{IMAGE}"') in messages
        assert ("Warning", "Failed", "Error: ImagePullBackOff") in messages
        failed_pull = [m for _, r, m in messages if m.startswith(f'Failed to pull image "{IMAGE}"')]
        assert len(failed_pull) == 1
        assert failed_pull[0].endswith(f"{IMAGE}: not found")

    async def test_events_are_ordered_as_they_happened(self, failing) -> None:
        client, bad, _ = failing
        reasons = [(e["reason"], e["message"]) for e in await _events_for(client, bad)]
        first_of = {key: index for index, key in reversed(list(enumerate(reasons)))}
        pulling = first_of[("Pulling", f'Pulling image "{IMAGE}"')]
        error = first_of[("Failed", "Error: ErrImagePull")]
        back_off = first_of[("BackOff", f'Back-off pulling image "{IMAGE}"')]
        assert pulling < error < back_off

    async def test_repeated_events_are_aggregated(self, failing) -> None:
        client, bad, _ = failing
        events = await _events_for(client, bad)
        keys = [(e["involvedObject"].get("fieldPath"), e["reason"], e["message"]) for e in events]
        assert len(keys) == len(set(keys)), "identical events must be one event with a count"
        (back_off,) = [e for e in events if e["reason"] == "BackOff"]
        assert back_off["count"] >= 2
        assert back_off["firstTimestamp"] <= back_off["lastTimestamp"]

    async def test_event_shape(self, failing) -> None:
        client, bad, _ = failing
        for event in await _events_for(client, bad):
            assert event["kind"] == "Event"
            if event["reason"] == "Scheduled":  # the scheduler's, about the pod itself
                assert event["source"] == {"component": "default-scheduler"}
                assert event["reportingComponent"] == "default-scheduler"
                assert "fieldPath" not in event["involvedObject"]
                assert event["message"] == "Successfully assigned default/bad to kubesim-node"
                continue
            assert event["source"]["component"] == "kubelet"
            assert event["source"]["host"] == "kubesim-node"
            assert event["reportingComponent"] == "kubelet"
            obj = event["involvedObject"]
            assert obj["kind"] == "Pod"
            assert obj["namespace"] == "default"
            assert obj["fieldPath"] == "spec.containers{c0}"
            assert event["metadata"]["namespace"] == "default"
            assert event["metadata"]["name"].startswith("bad.")
            assert event["count"] >= 1
            assert event["type"] in {"Normal", "Warning"}

    async def test_selector_terms_in_any_order(self, failing) -> None:
        client, _, other = failing
        selector = f"involvedObject.uid={other['metadata']['uid']},involvedObject.name=other"
        resp = await client.get(EVENTS, params={"fieldSelector": selector})
        items = (await resp.json())["items"]
        assert items
        assert {e["involvedObject"]["name"] for e in items} == {"other"}

    async def test_a_single_event_by_name(self, failing) -> None:
        client, bad, _ = failing
        first = (await _events_for(client, bad))[0]
        resp = await client.get(f"{EVENTS}/{first['metadata']['name']}")
        assert resp.status == 200
        assert (await resp.json())["metadata"]["uid"] == first["metadata"]["uid"]

    async def test_events_in_every_namespace(self, failing) -> None:
        client, _, _ = failing
        doc = await (await client.get("/api/v1/events")).json()
        assert {e["involvedObject"]["name"] for e in doc["items"]} == {"bad", "other"}
        doc = await (await client.get("/api/v1/namespaces/other/events")).json()
        assert doc["items"] == []

    async def test_events_table(self, failing) -> None:
        client, bad, _ = failing
        resp = await client.get(
            EVENTS,
            params={"fieldSelector": f"involvedObject.uid={bad['metadata']['uid']}"},
            headers={"Accept": TABLE},
        )
        table = await resp.json()
        columns = [c["name"] for c in table["columnDefinitions"]]
        rows = [dict(zip(columns, r["cells"], strict=True)) for r in table["rows"]]
        assert {r["Object"] for r in rows} == {"pod/bad"}
        back_off = next(r for r in rows if r["Reason"] == "BackOff")
        assert back_off["Count"] >= 2
        assert back_off["Source"] == "kubelet, kubesim-node"

    async def test_an_unsupported_selector_field(self, client: Client) -> None:
        resp = await client.get(EVENTS, params={"fieldSelector": "message=x"})
        assert resp.status == 400
        assert_status(await resp.json(), 400, "BadRequest")


class TestSuccessfulPullEvents:
    """A good image: Pulling then Pulled with the kubelet's durations and size."""

    async def test_pulled(self, client: Client) -> None:
        pod = await create_pod(client, pod_manifest("web", "nginx:1.27"))

        async def pulled() -> dict[str, Any] | None:
            events = await _events_for(client, pod)
            return next((e for e in events if e["reason"] == "Pulled"), None)

        event = await wait_for(pulled)
        assert event["type"] == "Normal"
        assert event["message"].startswith('Successfully pulled image "nginx:1.27" in ')
        assert "including waiting). Image size: " in event["message"]
        assert event["message"].endswith(" bytes.")

    async def test_already_present(self, client: Client) -> None:
        pod = await create_pod(client, pod_manifest("pause", "registry.k8s.io/pause:3.10"))

        async def present() -> dict[str, Any] | None:
            events = await _events_for(client, pod)
            return next((e for e in events if e["reason"] == "Pulled"), None)

        event = await wait_for(present)
        assert event["message"] == (
            'Container image "registry.k8s.io/pause:3.10" already present on machine'
        )
