"""The daemon's HTTP API as a client meets it first: discovery, documents, health, auth, metrics.

Each test serves the real `make_app` in-process (see conftest.py) over a restored `Cluster` with
fast timing, and reads the answers the way kubectl, the official clients and Prometheus read
them.
"""

from __future__ import annotations

import re

import pytest
from apikit import (
    PODS,
    Client,
    assert_status,
    create_pod,
    pod_manifest,
    pod_waiting_reason,
    wait_for,
)
from prometheus_client.parser import text_string_to_metric_families

from kubesim_images.daemon.api import READY


class TestDiscovery:
    """What kubectl reads to map kinds to resources before it sends anything."""

    async def test_version_is_kubernetes_1_32(self, client: Client) -> None:
        resp = await client.get("/version")
        assert resp.status == 200
        doc = await resp.json()
        assert (doc["major"], doc["minor"]) == ("1", "32")
        assert doc["gitVersion"].startswith("v1.32.")

    async def test_api_lists_the_core_version(self, client: Client) -> None:
        doc = await (await client.get("/api")).json()
        assert doc["kind"] == "APIVersions"
        assert doc["versions"] == ["v1"]

    async def test_apis_lists_the_named_groups(self, client: Client) -> None:
        doc = await (await client.get("/apis")).json()
        assert doc["kind"] == "APIGroupList"
        names = [g["name"] for g in doc["groups"]]
        assert names == [
            "apps",
            "authentication.k8s.io",
            "authorization.k8s.io",
            "coordination.k8s.io",
        ]
        assert doc["groups"][0]["preferredVersion"]["groupVersion"] == "apps/v1"
        authz = {"groupVersion": "authorization.k8s.io/v1", "version": "v1"}
        assert doc["groups"][2]["versions"] == [authz]
        assert doc["groups"][2]["preferredVersion"] == authz

    async def test_the_authorization_group_lists_only_the_reviews_served(
        self, client: Client
    ) -> None:
        """`kubectl auth can-i` posts a SelfSubjectAccessReview (a SelfSubjectRulesReview with
        `--list`): its group is discovered like any other, with the kinds the daemon answers,
        which take only `create`."""
        group = await (await client.get("/apis/authorization.k8s.io")).json()
        assert group["kind"] == "APIGroup"
        assert group["name"] == "authorization.k8s.io"
        assert group["preferredVersion"]["groupVersion"] == "authorization.k8s.io/v1"
        doc = await (await client.get("/apis/authorization.k8s.io/v1")).json()
        assert doc == {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "authorization.k8s.io/v1",
            "resources": [
                {
                    "name": "selfsubjectaccessreviews",
                    "singularName": "selfsubjectaccessreview",
                    "namespaced": False,
                    "kind": "SelfSubjectAccessReview",
                    "verbs": ["create"],
                },
                {
                    "name": "selfsubjectrulesreviews",
                    "singularName": "selfsubjectrulesreview",
                    "namespaced": False,
                    "kind": "SelfSubjectRulesReview",
                    "verbs": ["create"],
                },
            ],
        }
        review = {"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}
        resp = await client.post(
            f"/apis/{doc['groupVersion']}/selfsubjectaccessreviews", json=review
        )
        assert resp.status == 201

    @pytest.mark.parametrize(
        "path",
        [
            "/version",
            "/api",
            "/apis",
            "/api/v1",
            "/apis/apps",
            "/apis/apps/v1",
            "/apis/authorization.k8s.io",
            "/apis/authorization.k8s.io/v1",
        ],
    )
    async def test_discovery_answers_with_a_trailing_slash_too(
        self, client: Client, path: str
    ) -> None:
        """The Python client's VersionApi, CoreApi, ApisApi and each group's get_api_resources
        ask `/version/`, `/api/`, `/apis/`, `/apis/apps/v1/`: the same document, as the
        apiserver answers."""
        plain = await client.get(path)
        slashed = await client.get(f"{path}/")
        assert (plain.status, slashed.status) == (200, 200)
        assert await slashed.json() == await plain.json()

    async def test_the_group_document(self, client: Client) -> None:
        doc = await (await client.get("/apis/apps")).json()
        apps_v1 = {"groupVersion": "apps/v1", "version": "v1"}
        assert doc == {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": "apps",
            "versions": [apps_v1],
            "preferredVersion": apps_v1,
        }

    async def test_the_root_lists_the_paths_served(self, client: Client) -> None:
        doc = await (await client.get("/")).json()
        paths = doc["paths"]
        assert paths == sorted(paths)
        wanted = ["/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1", "/healthz"]
        wanted += ["/apis/authorization.k8s.io", "/apis/authorization.k8s.io/v1"]
        wanted += ["/apis/coordination.k8s.io", "/apis/coordination.k8s.io/v1"]
        wanted += ["/livez", "/metrics", "/openapi/v2", "/openapi/v3", "/readyz", "/version"]
        assert set(wanted) <= set(paths)
        assert "/api/v1/pods" not in paths  # discovery documents, not collections
        assert not [p for p in paths if p.endswith("/")]  # nor their second spelling
        for path in paths:  # every one answers
            assert (await client.get(path)).status == 200, path

    async def test_apps_v1_lists_workloads_with_scale_in_autoscaling(self, client: Client) -> None:
        doc = await (await client.get("/apis/apps/v1")).json()
        assert doc["groupVersion"] == "apps/v1"
        resources = {r["name"]: r for r in doc["resources"]}
        assert resources["deployments"]["shortNames"] == ["deploy"]
        assert resources["replicasets"]["shortNames"] == ["rs"]
        # kubectl scale resolves the Scale kind of the subresource from this entry.
        scale = resources["deployments/scale"]
        assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")

    async def test_api_v1_lists_the_served_resources_with_their_verbs(self, client: Client) -> None:
        doc = await (await client.get("/api/v1")).json()
        assert doc["kind"] == "APIResourceList"
        assert doc["groupVersion"] == "v1"
        resources = {r["name"]: r for r in doc["resources"]}
        assert set(resources) >= {
            "pods",
            "events",
            "nodes",
            "secrets",
            "serviceaccounts",
            "namespaces",
        }
        assert {"create", "delete", "get", "list", "patch", "watch"} <= set(
            resources["pods"]["verbs"]
        )
        assert {"get", "list"} <= set(resources["events"]["verbs"])
        assert {"create", "patch"} <= set(resources["secrets"]["verbs"])
        assert {"create", "patch"} <= set(resources["serviceaccounts"]["verbs"])
        assert resources["pods"]["namespaced"] is True
        assert resources["nodes"]["namespaced"] is False
        assert resources["pods"]["kind"] == "Pod"


class TestOpenAPI:
    """`/openapi/v3` for kubectl's field validation; `/openapi.json` for people and tools."""

    async def test_v3_root_points_at_the_core_document(self, client: Client) -> None:
        root = await (await client.get("/openapi/v3")).json()
        url = root["paths"]["api/v1"]["serverRelativeURL"]
        assert url.startswith("/openapi/v3/api/v1")
        core = await client.get(url)
        assert core.status == 200
        doc = await core.json()
        patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
        assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
        assert patch["x-kubernetes-group-version-kind"]["kind"] == "Pod"

    async def test_openapi_json_is_an_openapi_3_document_of_the_pod_routes(
        self, client: Client
    ) -> None:
        doc = await (await client.get("/openapi.json")).json()
        assert doc["openapi"].startswith("3.")
        paths = doc["paths"]
        assert {"get", "post"} <= set(paths["/api/v1/namespaces/{namespace}/pods"])
        assert {"get", "delete", "patch"} <= set(
            paths["/api/v1/namespaces/{namespace}/pods/{name}"]
        )

    async def test_every_documented_operation_is_routed(self, client: Client) -> None:
        doc = await (await client.get("/openapi.json")).json()
        routed = {
            (route.method, route.resource.canonical)
            for route in client.server.app.router.routes()  # type: ignore[union-attr]
            if route.resource is not None
        }
        documented = {
            (method.upper(), path)
            for path, operations in doc["paths"].items()
            for method in operations
            if method != "parameters"
        }
        assert documented - routed == set()


class TestHealth:
    """Liveness is unconditional; readiness waits for the restored state."""

    @pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
    async def test_ok(self, client: Client, path: str) -> None:
        resp = await client.get(path)
        assert resp.status == 200
        assert await resp.text() == "ok"

    async def test_readyz_is_503_until_ready(self, client: Client) -> None:
        client.server.app[READY].clear()  # type: ignore[union-attr]
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert (await client.get("/healthz")).status == 200


class TestBearerToken:
    """With a token, every path but /healthz answers 401 without `Authorization: Bearer`."""

    TOKEN = "s3cr3t-t0ken"

    @staticmethod
    def _concrete(path: str) -> str:
        return re.sub(r"\{namespace\}", "default", re.sub(r"\{name\}", "x", path))

    async def test_every_route_needs_the_token(self, api) -> None:
        client = await api(token=self.TOKEN)
        routes = [
            (route.method, self._concrete(route.resource.canonical))
            for route in client.server.app.router.routes()
            if route.resource is not None and route.method != "HEAD"
        ]
        assert len(routes) > 30
        for method, path in [*routes, ("GET", "/no/such/route")]:
            if path == "/healthz":
                continue
            resp = await client.request(method, path, json={})
            assert resp.status == 401, (method, path)
            assert_status(await resp.json(), 401, "Unauthorized")

    @pytest.mark.parametrize(
        "header",
        ["Bearer wrong", f"Basic {TOKEN}", TOKEN, "Bearer", f"Bearer {TOKEN}x", "Bearer tökén"],
    )
    async def test_a_wrong_credential_is_refused(self, api, header: str) -> None:
        client = await api(token=self.TOKEN)
        resp = await client.get(PODS, headers={"Authorization": header})
        assert resp.status == 401
        assert_status(await resp.json(), 401, "Unauthorized")

    async def test_the_token_opens_every_path(self, api) -> None:
        client = await api(token=self.TOKEN)
        auth = {"Authorization": f"Bearer {self.TOKEN}"}
        for path in ["/version", "/api/v1", PODS, "/metrics", "/readyz", "/debug/pulls"]:
            resp = await client.get(path, headers=auth)
            assert resp.status == 200, path
        resp = await client.post(PODS, json=pod_manifest("p", "busybox:1.36"), headers=auth)
        assert resp.status == 201

    async def test_healthz_needs_no_token(self, api) -> None:
        client = await api(token=self.TOKEN)
        resp = await client.get("/healthz")
        assert resp.status == 200

    async def test_a_refused_create_changes_nothing(self, api) -> None:
        client = await api(token=self.TOKEN)
        resp = await client.post(PODS, json=pod_manifest("p", "busybox:1.36"))
        assert resp.status == 401
        resp = await client.get(PODS, headers={"Authorization": f"Bearer {self.TOKEN}"})
        assert (await resp.json())["items"] == []


class TestMetrics:
    """`/metrics` is the kubelet's exposition, parsed back with prometheus_client's parser."""

    @staticmethod
    async def _samples(client: Client) -> list:
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        text = await resp.text()
        return [s for family in text_string_to_metric_families(text) for s in family.samples]

    async def test_a_successful_pull_is_observed(self, client: Client) -> None:
        await create_pod(client, pod_manifest("web", "nginx:1.27"))

        async def running() -> bool:
            return await pod_waiting_reason(client, "web") == [None]

        await wait_for(running)
        samples = await self._samples(client)
        counts = [s for s in samples if s.name == "kubelet_image_pull_duration_seconds_count"]
        assert counts
        assert sum(s.value for s in counts) >= 1
        # nginx:1.27 is ~70 MiB compressed.
        assert {s.labels["image_size_in_bytes"] for s in counts} == {"10MB-100MB"}
        ensure = {
            (
                s.labels["pull_policy"],
                s.labels["present_locally"],
                s.labels["pull_required"],
            ): s.value
            for s in samples
            if s.name == "kubesim_image_manager_ensure_image_requests_total"
        }
        assert ensure[("ifnotpresent", "false", "true")] >= 1
        pulls = {
            s.labels["result"]: s.value for s in samples if s.name == "kubesim_image_pulls_total"
        }
        assert pulls["success"] >= 1

    async def test_node_gauges_are_read_at_scrape_time(self, client: Client) -> None:
        samples = {s.name: s.value for s in await self._samples(client)}
        assert samples["kubesim_images_on_node"] == 1  # the preloaded pause image
        assert samples["kubesim_image_pulls_in_flight"] == 0
