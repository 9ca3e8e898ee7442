"""apps/v1 Deployments and ReplicaSets through the HTTP API, with their controllers running.

Every wait is on a watch, never on the clock: a rollout is followed through the ReplicaSets'
watch, and the bounds of a rolling update (at most replicas + maxSurge pods, at least replicas
- maxUnavailable available) are checked on every state the watch shows. Rollback is the JSON
patch `kubectl rollout undo` sends; scaling is the merge patch of `kubectl scale` on /scale.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any, Self

import pytest
from apikit import PODS, TABLE, ApiFactory, Client, assert_status, cluster_of

APPS = "/apis/apps/v1/namespaces/default"
DEPLOYMENTS = f"{APPS}/deployments"
REPLICASETS = f"{APPS}/replicasets"
NAMESPACES = "/api/v1/namespaces"


def deployment(
    name: str = "web",
    image: str = "busybox:1.36",
    replicas: int = 3,
    strategy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What `kubectl create deployment NAME --image=IMAGE --replicas=N` sends."""
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "resources": {}}]},
            },
        },
    }
    if strategy is not None:
        body["spec"]["strategy"] = strategy
    return body


class Watch:
    """A watch on a collection, opened before the change it is to see; each event in order."""

    def __init__(self, client: Client, path: str, **params: str) -> None:
        self.client = client
        self.path = path
        self.params = {"watch": "1", **params}
        self._response: Any = None

    async def __aenter__(self) -> Self:
        self._response = await self.client.get(self.path, params=self.params)
        assert self._response.status == 200
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._response.close()

    async def next(self, *, within: float = 20.0) -> tuple[str, dict[str, Any]]:
        async with asyncio.timeout(within):  # bounds a hang only; the test waits on events
            line = await self._response.content.readline()
        assert line, f"the watch on {self.path} ended"
        event = json.loads(line)
        return event["type"], event["object"]

    async def until(self, probe: Callable[[dict[str, Any]], Any]) -> Any:
        while True:
            _, obj = await self.next()
            if result := probe(obj):
                return result


def rolled_out(replicas: int, generation: int | None = None) -> Callable[[dict[str, Any]], Any]:
    """What `kubectl rollout status` waits for (DeploymentStatusViewer)."""

    def probe(d: dict[str, Any]) -> Any:
        status = d.get("status") or {}
        wanted = generation or d["metadata"]["generation"]
        return (
            status.get("observedGeneration", 0) >= wanted
            and status.get("updatedReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
            and d
        )

    return probe


async def create_rolled_out(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    name = body["metadata"]["name"]
    async with Watch(client, DEPLOYMENTS, fieldSelector=f"metadata.name={name}") as watch:
        resp = await client.post(DEPLOYMENTS, json=body)
        assert resp.status == 201, await resp.json()
        return await watch.until(rolled_out(body["spec"]["replicas"]))


async def replicasets(client: Client) -> dict[str, dict[str, Any]]:
    items = (await (await client.get(REPLICASETS)).json())["items"]
    return {rs["metadata"]["name"]: rs for rs in items}


async def pods(client: Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await (await client.get(PODS)).json())["items"]
    return items


async def active_pods(client: Client) -> list[dict[str, Any]]:
    """The pods a ReplicaSet counts: deletion is graceful, so a rollout or a scale can be done
    while the pods it deleted are still listed, Terminating."""
    return [p for p in await pods(client) if "deletionTimestamp" not in p["metadata"]]


class TestCreate:
    async def test_a_deployment_makes_a_replicaset_and_its_pods(self, client: Client) -> None:
        d = await create_rolled_out(client, deployment(replicas=3))
        assert d["apiVersion"] == "apps/v1"
        assert d["metadata"]["generation"] == 1
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
        assert d["spec"]["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
        }
        conditions = {c["type"]: c for c in d["status"]["conditions"]}
        assert conditions["Available"]["reason"] == "MinimumReplicasAvailable"
        assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
        [rs] = (await replicasets(client)).values()
        hashed = rs["metadata"]["labels"]["pod-template-hash"]
        assert rs["metadata"]["name"] == f"web-{hashed}"
        assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": hashed}
        assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
        owned = await pods(client)
        assert len(owned) == 3
        for pod in owned:
            assert pod["metadata"]["name"].startswith(f"web-{hashed}-")
            ref = pod["metadata"]["ownerReferences"][0]
            assert (ref["kind"], ref["uid"], ref["controller"]) == (
                "ReplicaSet",
                rs["metadata"]["uid"],
                True,
            )
            # The template's pull policy default reached the pod, as the apiserver's would.
            assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"

    async def test_tables_have_kubectls_columns(self, client: Client) -> None:
        await create_rolled_out(client, deployment(replicas=2))
        table = await (await client.get(DEPLOYMENTS, headers={"Accept": TABLE})).json()
        names = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
        assert names == ["Name", "Ready", "Up-to-date", "Available", "Age"]
        assert table["rows"][0]["cells"][:4] == ["web", "2/2", 2, 2]
        table = await (await client.get(REPLICASETS, headers={"Accept": TABLE})).json()
        names = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
        assert names == ["Name", "Desired", "Current", "Ready", "Age"]
        assert table["rows"][0]["cells"][1:4] == [2, 2, 2]

    async def test_a_dry_run_stores_nothing_and_starts_nothing(self, client: Client) -> None:
        resp = await client.post(f"{DEPLOYMENTS}?dryRun=All", json=deployment())
        assert resp.status == 201
        doc = await resp.json()
        assert "resourceVersion" not in doc["metadata"]
        assert (await client.get(f"{DEPLOYMENTS}/web")).status == 404
        assert await replicasets(client) == {}
        assert await pods(client) == []

    @pytest.mark.parametrize(
        ("change", "field", "text"),
        [
            (
                {"template": {"metadata": {"labels": {"app": "other"}}}},
                "spec.template.metadata.labels",
                "`selector` does not match template `labels`",
            ),
            (
                {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}},
                "spec.strategy.rollingUpdate.maxUnavailable",
                "may not be 0 when `maxSurge` is 0",
            ),
            ({"replicas": -1}, "spec.replicas", "must be greater than or equal to 0"),
        ],
    )
    async def test_invalid_specs_are_refused_with_the_apiservers_texts(
        self, client: Client, change: dict[str, Any], field: str, text: str
    ) -> None:
        body = deployment()
        template = change.pop("template", None)
        if template is not None:
            body["spec"]["template"]["metadata"] = template["metadata"]
        body["spec"].update(change)
        resp = await client.post(DEPLOYMENTS, json=body)
        doc = await resp.json()
        assert_status(doc, 422, "Invalid", message_contains=text)
        assert doc["details"]["causes"][0]["field"] == field


class TestRollout:
    async def test_set_image_rolls_within_max_surge_and_max_unavailable(
        self, client: Client
    ) -> None:
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 1}}
        before = await create_rolled_out(client, deployment(replicas=6, strategy=strategy))
        [old_name] = await replicasets(client)
        seen: dict[str, dict[str, Any]] = {}
        async with Watch(client, REPLICASETS) as watch:
            # What `kubectl set image deployment/web app=busybox:1.37` sends.
            patch = {
                "spec": {
                    "template": {
                        "spec": {
                            "$setElementOrder/containers": [{"name": "app"}],
                            "containers": [{"image": "busybox:1.37", "name": "app"}],
                        }
                    }
                }
            }
            resp = await client.patch(
                f"{DEPLOYMENTS}/web",
                json=patch,
                headers={"Content-Type": "application/strategic-merge-patch+json"},
            )
            assert resp.status == 200, await resp.json()
            assert (await resp.json())["metadata"]["generation"] == 2
            while True:
                _, rs = await watch.next()
                seen[rs["metadata"]["name"]] = rs
                spec = sum(r["spec"]["replicas"] for r in seen.values())
                available = sum(
                    (r.get("status") or {}).get("availableReplicas", 0) for r in seen.values()
                )
                if old_name in seen:  # the bounds hold over every state the watch shows
                    assert spec <= 6 + 2, seen
                    assert available >= 6 - 1, seen
                new = [r for n, r in seen.items() if n != old_name]
                if (
                    new
                    and new[0]["status"].get("availableReplicas") == 6
                    and seen.get(old_name, {}).get("status", {}).get("replicas", 1) == 0
                ):
                    break
        after = await (await client.get(f"{DEPLOYMENTS}/web")).json()
        assert after["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        sets = await replicasets(client)
        assert sets[old_name]["spec"]["replicas"] == 0  # kept for a rollback
        images = {p["spec"]["containers"][0]["image"] for p in await active_pods(client)}
        assert images == {"busybox:1.37"}
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        events = (
            await (
                await client.get(
                    "/api/v1/namespaces/default/events",
                    params={"fieldSelector": "involvedObject.kind=Deployment"},
                )
            ).json()
        )["items"]
        messages = [e["message"] for e in events]
        new_name = next(n for n in sets if n != old_name)
        assert f"Scaled up replica set {new_name} from 0 to 2" in messages
        down = [m for m in messages if m.startswith(f"Scaled down replica set {old_name} from ")]
        assert down, messages
        assert down[-1].endswith(" to 0")

    async def test_rollout_undo_makes_the_old_set_new_with_the_next_revision(
        self, client: Client
    ) -> None:
        await create_rolled_out(client, deployment(replicas=2))
        [first] = (await replicasets(client)).values()
        async with Watch(client, DEPLOYMENTS, fieldSelector="metadata.name=web") as watch:
            patch = {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "app", "image": "busybox:1.37"}]}}
                }
            }
            resp = await client.patch(
                f"{DEPLOYMENTS}/web",
                json=patch,
                headers={"Content-Type": "application/strategic-merge-patch+json"},
            )
            assert resp.status == 200
            await watch.until(rolled_out(2, generation=2))
            # `kubectl rollout undo`: the old set's template (hash label removed, as a Go
            # struct echoes it) and the deployment's annotations, as a JSON patch.
            template = json.loads(json.dumps(first["spec"]["template"]))
            del template["metadata"]["labels"]["pod-template-hash"]
            template["metadata"]["creationTimestamp"] = None
            current = await (await client.get(f"{DEPLOYMENTS}/web")).json()
            undo = [
                {"op": "replace", "path": "/spec/template", "value": template},
                {
                    "op": "replace",
                    "path": "/metadata/annotations",
                    "value": current["metadata"]["annotations"],
                },
            ]
            resp = await client.patch(
                f"{DEPLOYMENTS}/web",
                json=undo,
                headers={"Content-Type": "application/json-patch+json"},
            )
            assert resp.status == 200, await resp.json()
            await watch.until(rolled_out(2, generation=3))
        sets = await replicasets(client)
        assert len(sets) == 2  # no third set: the first one was found again
        revived = sets[first["metadata"]["name"]]
        annotations = revived["metadata"]["annotations"]
        assert annotations["deployment.kubernetes.io/revision"] == "3"
        assert annotations["deployment.kubernetes.io/revision-history"] == "1"
        assert revived["spec"]["replicas"] == 2
        images = {p["spec"]["containers"][0]["image"] for p in await active_pods(client)}
        assert images == {"busybox:1.36"}

    async def test_recreate_removes_every_old_pod_before_a_new_one(self, client: Client) -> None:
        await create_rolled_out(client, deployment(replicas=3, strategy={"type": "Recreate"}))
        old_uids = {p["metadata"]["uid"] for p in await pods(client)}
        live: set[str] = set(old_uids)
        async with Watch(client, PODS) as watch:
            patch = {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "app", "image": "busybox:1.37"}]}}
                }
            }
            resp = await client.patch(
                f"{DEPLOYMENTS}/web",
                json=patch,
                headers={"Content-Type": "application/strategic-merge-patch+json"},
            )
            assert resp.status == 200
            new_ready: set[str] = set()
            while len(new_ready) < 3:
                change, pod = await watch.next()
                uid = pod["metadata"]["uid"]
                if change == "DELETED":
                    live.discard(uid)
                    continue
                if uid not in old_uids:
                    assert not live & old_uids, "a new pod appeared while old pods were live"
                    live.add(uid)
                    if pod["status"].get("phase") == "Running":
                        new_ready.add(uid)


class TestConditions:
    async def test_a_rollout_stuck_on_a_failing_pull_exceeds_its_progress_deadline(
        self, client: Client
    ) -> None:
        body = deployment(image="registry.example.com/team/missing:v1", replicas=2)
        body["spec"]["progressDeadlineSeconds"] = 1
        async with Watch(client, DEPLOYMENTS, fieldSelector="metadata.name=web") as watch:
            assert (await client.post(DEPLOYMENTS, json=body)).status == 201

            def timed_out(d: dict[str, Any]) -> Any:
                for cond in (d.get("status") or {}).get("conditions") or []:
                    if cond["type"] == "Progressing" and cond["status"] == "False":
                        return cond
                return None

            cond = await watch.until(timed_out)
        [rs] = await replicasets(client)
        assert cond["reason"] == "ProgressDeadlineExceeded"
        assert cond["message"] == f'ReplicaSet "{rs}" has timed out progressing.'
        d = await (await client.get(f"{DEPLOYMENTS}/web")).json()
        available = {c["type"]: c for c in d["status"]["conditions"]}["Available"]
        assert (available["status"], available["reason"]) == ("False", "MinimumReplicasUnavailable")
        assert d["status"]["unavailableReplicas"] == 2

    async def test_min_ready_seconds_delays_availability_not_readiness(
        self, client: Client
    ) -> None:
        body = deployment(replicas=1)
        body["spec"]["minReadySeconds"] = 1
        seen: list[tuple[int, int]] = []
        async with Watch(client, DEPLOYMENTS, fieldSelector="metadata.name=web") as watch:
            assert (await client.post(DEPLOYMENTS, json=body)).status == 201

            def available(d: dict[str, Any]) -> bool:
                status = d.get("status") or {}
                seen.append((status.get("readyReplicas", 0), status.get("availableReplicas", 0)))
                return status.get("availableReplicas", 0) == 1

            await watch.until(available)
        # Ready first, available only once it has been ready for minReadySeconds.
        assert (1, 0) in seen
        assert seen[-1] == (1, 1)


class TestScaleAndDelete:
    async def test_scale_subresource_as_kubectl_scale_patches_it(self, client: Client) -> None:
        await create_rolled_out(client, deployment(replicas=2))
        scale = await (await client.get(f"{DEPLOYMENTS}/web/scale")).json()
        assert scale["kind"] == "Scale"
        assert scale["apiVersion"] == "autoscaling/v1"
        assert scale["spec"] == {"replicas": 2}
        assert scale["status"]["selector"] == "app=web"
        async with Watch(client, DEPLOYMENTS, fieldSelector="metadata.name=web") as watch:
            resp = await client.patch(
                f"{DEPLOYMENTS}/web/scale",
                json={"spec": {"replicas": 5}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            assert resp.status == 200
            assert (await resp.json())["spec"]["replicas"] == 5
            await watch.until(rolled_out(5, generation=2))
        assert len(await active_pods(client)) == 5
        async with Watch(client, DEPLOYMENTS, fieldSelector="metadata.name=web") as watch:
            resp = await client.patch(
                f"{DEPLOYMENTS}/web/scale",
                json={"spec": {"replicas": 1}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            await watch.until(rolled_out(1, generation=3))
        assert len(await active_pods(client)) == 1

    async def test_deleting_a_deployment_deletes_its_sets_and_pods(self, client: Client) -> None:
        await create_rolled_out(client, deployment(replicas=3))
        async with Watch(client, PODS) as watch:
            resp = await client.delete(
                f"{DEPLOYMENTS}/web", json={"propagationPolicy": "Background"}
            )
            assert resp.status == 200
            assert (await resp.json())["status"] == "Success"
            gone = 0
            while gone < 3:
                change, _ = await watch.next()
                gone += change == "DELETED"
        assert await replicasets(client) == {}
        assert await pods(client) == []

    async def test_a_delete_checks_its_preconditions(self, client: Client) -> None:
        created = await (await client.post(DEPLOYMENTS, json=deployment(replicas=0))).json()
        resp = await client.delete(
            f"{DEPLOYMENTS}/web", json={"preconditions": {"uid": "not-the-uid"}}
        )
        body = await resp.json()
        assert_status(body, 409, "Conflict")
        assert body["message"] == (
            'Operation cannot be fulfilled on deployments.apps "web": Precondition failed: '
            f"UID in precondition: not-the-uid, UID in object meta: {created['metadata']['uid']}"
        )
        assert body["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
        assert (await client.get(f"{DEPLOYMENTS}/web")).status == 200
        uid = created["metadata"]["uid"]
        resp = await client.delete(f"{DEPLOYMENTS}/web", json={"preconditions": {"uid": uid}})
        assert resp.status == 200
        assert (await client.get(f"{DEPLOYMENTS}/web")).status == 404

    async def test_a_replicaset_replaces_a_deleted_pod(self, client: Client) -> None:
        await create_rolled_out(client, deployment(replicas=2))
        before = {p["metadata"]["name"] for p in await pods(client)}
        victim = min(before)
        async with Watch(client, PODS) as watch:  # the current pods come first, as ADDED
            assert (await client.delete(f"{PODS}/{victim}")).status == 200
            change, pod = await watch.next()
            while change != "ADDED" or pod["metadata"]["name"] in before:
                change, pod = await watch.next()
        assert pod["metadata"]["name"].startswith("web-")
        assert len(await active_pods(client)) == 2


class TestNamespaces:
    """Workloads under the namespace lifecycle: admission for a client's create and for the
    controllers' own, and a namespace's deletion that takes its Deployments with it."""

    async def test_a_deployment_in_a_missing_namespace_is_not_found(self, client: Client) -> None:
        resp = await client.post("/apis/apps/v1/namespaces/nope/deployments", json=deployment())
        body = await resp.json()
        assert_status(body, 404, "NotFound")
        assert body["message"] == 'namespaces "nope" not found'
        assert (await client.get("/apis/apps/v1/deployments")).status == 200
        listed = await (await client.get("/apis/apps/v1/deployments")).json()
        assert listed["items"] == []

    async def test_deleting_the_namespace_deletes_the_deployment_before_its_pods(
        self, client: Client
    ) -> None:
        assert (await client.post(NAMESPACES, json={"metadata": {"name": "team"}})).status == 201
        team = "/apis/apps/v1/namespaces/team/deployments"
        async with Watch(client, team) as deployments:
            assert (await client.post(team, json=deployment(replicas=3))).status == 201
            await deployments.until(rolled_out(3))
        async with (
            Watch(client, f"{NAMESPACES}/team/pods") as pod_watch,
            Watch(client, team) as deployment_watch,
            Watch(client, NAMESPACES, fieldSelector="metadata.name=team") as ns_watch,
        ):
            assert (await client.delete(f"{NAMESPACES}/team")).status == 200
            await ns_watch.until(lambda ns: ns["status"]["phase"] == "Terminating")
            names: set[str] = set()
            gone: set[str] = set()
            first_terminating: int | None = None
            while not names or gone != names:
                change, pod = await pod_watch.next()
                name = pod["metadata"]["name"]
                if change == "ADDED" and len(names) >= 3:
                    pytest.fail(f"pod {name} created in a terminating namespace")
                names.add(name)
                if change != "ADDED" and first_terminating is None:
                    first_terminating = int(pod["metadata"]["resourceVersion"])
                if change == "DELETED":
                    gone.add(name)
            assert len(names) == 3
            change = ""
            while change != "DELETED":
                change, d = await deployment_watch.next()
            # The Deployment went before the first pod began terminating (resourceVersions
            # order the changes): no controller was left to replace a purged pod.
            assert first_terminating is not None
            assert int(d["metadata"]["resourceVersion"]) < first_terminating
            change = ""
            while change != "DELETED":
                change, _ = await ns_watch.next()
        for path in (team, "/apis/apps/v1/namespaces/team/replicasets", f"{NAMESPACES}/team/pods"):
            assert (await (await client.get(path)).json())["items"] == [], path

    async def test_a_replicaset_creates_no_pod_in_a_terminating_namespace(
        self, client: Client
    ) -> None:
        assert (await client.post(NAMESPACES, json={"metadata": {"name": "team"}})).status == 201
        rs_path = "/apis/apps/v1/namespaces/team/replicasets"
        rs = deployment(replicas=2)
        rs["kind"] = "ReplicaSet"
        cluster = cluster_of(client)
        controllers = cluster.controllers
        assert controllers is not None
        async with Watch(client, f"{NAMESPACES}/team/pods") as pod_watch:
            assert (await client.post(rs_path, json=rs)).status == 201
            for _ in range(2):
                change, _ = await pod_watch.next()
                assert change == "ADDED"
            # Hold the namespace controller before it deletes anything, as a slow one would.
            release = asyncio.Event()
            purge = cluster.namespaces._purge

            async def held(name: str) -> None:
                await release.wait()
                await purge(name)

            cluster.namespaces._purge = held
            assert (await client.delete(f"{NAMESPACES}/team")).status == 200
            pods_now = await (await client.get(f"{NAMESPACES}/team/pods")).json()
            victim = pods_now["items"][0]["metadata"]["name"]
            resp = await client.delete(f"{NAMESPACES}/team/pods/{victim}")
            assert resp.status == 200
            change = ""
            while change != "DELETED":
                change, pod = await pod_watch.next()
                assert change != "ADDED", f"pod {pod['metadata']['name']} created"
            await controllers.idle.wait()
            listed = await (await client.get(f"{NAMESPACES}/team/pods")).json()
            assert len(listed["items"]) == 1
            # Refused as expected: the replicaset controller records no FailedCreate then.
            events = await (await client.get(f"{NAMESPACES}/team/events")).json()
            assert "FailedCreate" not in {e["reason"] for e in events["items"]}
            release.set()

    async def test_a_refused_pod_create_is_a_failed_create_event_on_the_replicaset(
        self, client: Client
    ) -> None:
        rs = deployment(name="lost", replicas=1)
        rs["kind"] = "ReplicaSet"
        rs["spec"]["template"]["spec"]["serviceAccountName"] = "nope"
        async with Watch(client, f"{NAMESPACES}/default/events") as events:
            assert (await client.post(REPLICASETS, json=rs)).status == 201
            event = await events.until(lambda e: e if e["reason"] == "FailedCreate" else None)
        assert event["type"] == "Warning"
        assert event["involvedObject"]["kind"] == "ReplicaSet"
        assert event["involvedObject"]["name"] == "lost"
        assert event["source"] == {"component": "replicaset-controller"}
        assert re.fullmatch(
            r'Error creating: pods "lost-[a-z0-9]{5}" is forbidden: error looking up service '
            r'account default/nope: serviceaccount "nope" not found',
            event["message"],
        ), event["message"]
        assert await pods(client) == []


async def test_a_deployment_spreads_over_the_nodes_and_each_node_pulls_the_new_image(
    api: ApiFactory,
) -> None:
    """With several simulated nodes a rollout is every node's pulls: the pods spread as the
    daemon places any pod, and each node ensures the new image itself."""
    client = await api(node={"name": "n", "count": 2, "bandwidth": "unlimited"})
    await create_rolled_out(client, deployment(replicas=4))
    placed = sorted(p["spec"]["nodeName"] for p in await pods(client))
    assert placed == ["n-0", "n-0", "n-1", "n-1"]
    async with Watch(client, DEPLOYMENTS, fieldSelector="metadata.name=web") as watch:
        patch = {
            "spec": {
                "template": {"spec": {"containers": [{"name": "app", "image": "busybox:1.37"}]}}
            }
        }
        resp = await client.patch(
            f"{DEPLOYMENTS}/web",
            json=patch,
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        assert resp.status == 200
        await watch.until(rolled_out(4, generation=2))
    nodes = (await (await client.get("/api/v1/nodes")).json())["items"]
    for node in nodes:
        names = {n for image in node["status"]["images"] for n in image["names"]}
        assert any("busybox:1.37" in n for n in names), node["metadata"]["name"]
