"""The OpenAPI documents: the apiserver-shaped core/v1 schemas and the daemon's own document.

kubectl explain resolves kinds by `x-kubernetes-group-version-kind` and follows `$ref`s, so
every kind served must be found that way and every reference must resolve; `/openapi.json`
types its bodies with the same schemas.
"""

from __future__ import annotations

from typing import Any

from apikit import Client

from kubesim_images.daemon.discovery import RESOURCES

PREFIX = "#/components/schemas/"
PODS_PATH = "/api/v1/namespaces/default/pods"


def refs(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("$ref"), str):
                found.add(item["$ref"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


async def core_document(client: Client) -> dict[str, Any]:
    root = await (await client.get("/openapi/v3")).json()
    resp = await client.get(root["paths"]["api/v1"]["serverRelativeURL"])
    assert resp.status == 200
    doc: dict[str, Any] = await resp.json()
    return doc


class TestCoreV1Document:
    async def test_every_served_kind_and_its_list_has_a_schema_found_by_gvk(
        self, client: Client
    ) -> None:
        schemas = (await core_document(client))["components"]["schemas"]
        by_gvk = {
            (gvk["group"], gvk["version"], gvk["kind"]): name
            for name, schema in schemas.items()
            for gvk in schema.get("x-kubernetes-group-version-kind", [])
        }
        for resource in (r for r in RESOURCES if "/" not in r["name"]):  # not pods/eviction
            for kind in (resource["kind"], resource["kind"] + "List"):
                assert by_gvk[("", "v1", kind)] == f"io.k8s.api.core.v1.{kind}"
        assert by_gvk[("", "v1", "Status")] == "io.k8s.apimachinery.pkg.apis.meta.v1.Status"

    async def test_every_reference_resolves(self, client: Client) -> None:
        doc = await core_document(client)
        schemas = doc["components"]["schemas"]
        for ref in refs(doc):
            assert ref.startswith(PREFIX), ref
            assert ref.removeprefix(PREFIX) in schemas, ref

    async def test_shaped_as_the_apiserver_writes_it(self, client: Client) -> None:
        schemas = (await core_document(client))["components"]["schemas"]
        pod = schemas["io.k8s.api.core.v1.Pod"]
        assert pod["description"].startswith("Pod is a collection of containers")
        assert pod["properties"]["spec"] == {
            "allOf": [{"$ref": PREFIX + "io.k8s.api.core.v1.PodSpec"}],
            "description": "Specification of the desired behavior of the pod. More info: "
            "https://git.k8s.io/community/contributors/devel/sig-architecture/"
            "api-conventions.md#spec-and-status",
        }
        assert "enum" not in pod["properties"]["kind"]
        containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
        assert containers["type"] == "array"
        assert containers["items"] == {
            "allOf": [{"$ref": PREFIX + "io.k8s.api.core.v1.Container"}],
            "default": {},
        }
        assert containers["x-kubernetes-patch-merge-key"] == "name"
        container = schemas["io.k8s.api.core.v1.Container"]
        assert container["required"] == ["name"]
        assert container["properties"]["args"]["items"] == {"default": "", "type": "string"}
        assert container["properties"]["imagePullPolicy"]["type"] == "string"
        labels = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["labels"]
        assert labels["additionalProperties"] == {"default": "", "type": "string"}
        no_nulls = [
            name
            for name, schema in schemas.items()
            for prop in schema.get("properties", {}).values()
            if isinstance(prop.get("type"), list)
        ]
        assert no_nulls == []

    async def test_each_kind_declares_patch_with_field_validation(self, client: Client) -> None:
        paths = (await core_document(client))["paths"]
        for resource in (r for r in RESOURCES if "/" not in r["name"]):  # not pods/status
            base = (
                f"/api/v1/namespaces/{{namespace}}/{resource['name']}"
                if resource["namespaced"]
                else f"/api/v1/{resource['name']}"
            )
            patch = paths[f"{base}/{{name}}"]["patch"]
            assert patch["x-kubernetes-group-version-kind"]["kind"] == resource["kind"]
            assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
        create = paths["/api/v1/namespaces/{namespace}/pods"]["post"]
        assert create["operationId"] == "createCoreV1NamespacedPod"
        assert create["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": PREFIX + "io.k8s.api.core.v1.Pod"
        }

    async def test_the_hash_names_the_document(self, client: Client) -> None:
        first = (await (await client.get("/openapi/v3")).json())["paths"]["api/v1"]
        again = (await (await client.get("/openapi/v3")).json())["paths"]["api/v1"]
        assert first == again
        assert first["serverRelativeURL"] != "/openapi/v3/api/v1?hash=0.1.0"


class TestAppsV1Document:
    """`/openapi/v3/apis/apps/v1`: what `kubectl explain deployment...` and kubectl's check for
    server-side field validation read."""

    async def test_listed_in_the_root_and_self_contained(self, client: Client) -> None:
        root = await (await client.get("/openapi/v3")).json()
        resp = await client.get(root["paths"]["apis/apps/v1"]["serverRelativeURL"])
        assert resp.status == 200
        doc = await resp.json()
        schemas = doc["components"]["schemas"]
        for ref in refs(doc):
            assert ref.removeprefix("#/components/schemas/") in schemas, ref
        by_gvk = {
            (gvk["group"], gvk["version"], gvk["kind"]): name
            for name, schema in schemas.items()
            for gvk in schema.get("x-kubernetes-group-version-kind", [])
        }
        assert by_gvk[("apps", "v1", "Deployment")] == "io.k8s.api.apps.v1.Deployment"
        assert by_gvk[("autoscaling", "v1", "Scale")] == "io.k8s.api.autoscaling.v1.Scale"
        for plural in ("deployments", "replicasets"):
            patch = doc["paths"][f"/apis/apps/v1/namespaces/{{namespace}}/{plural}/{{name}}"]
            names = {p["name"] for p in patch["patch"]["parameters"]}
            assert "fieldValidation" in names
            assert patch["patch"]["x-kubernetes-group-version-kind"]["group"] == "apps"


class TestDaemonDocument:
    async def test_bodies_reference_the_core_schemas(self, client: Client) -> None:
        doc = await (await client.get("/openapi.json")).json()
        schemas = doc["components"]["schemas"]
        for ref in refs(doc):
            assert ref.removeprefix(PREFIX) in schemas, ref
        create = doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["post"]
        assert create["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": PREFIX + "io.k8s.api.core.v1.Pod"
        }
        assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
            "$ref": PREFIX + "io.k8s.api.core.v1.Pod"
        }
        assert create["responses"]["422"]["content"]["application/json"]["schema"] == {
            "$ref": PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
        }
        listing = doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["get"]
        assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": PREFIX + "io.k8s.api.core.v1.PodList"
        }
        assert "Apache-2.0" in doc["info"]["description"]

    async def test_path_parameters_are_declared(self, client: Client) -> None:
        doc = await (await client.get("/openapi.json")).json()
        for path, operations in doc["paths"].items():
            declared = {p["name"] for p in operations.get("parameters", [])}
            wanted = {part[1:-1] for part in path.split("/") if part.startswith("{")}
            assert declared == wanted, path

    async def test_timeout_seconds_is_declared_as_the_daemon_reads_it(self, client: Client) -> None:
        # The daemon takes fractional seconds; its document said integer, so schemathesis saw
        # `timeoutSeconds=0.5` accepted against the document. The core document keeps upstream's.
        doc = await (await client.get("/openapi.json")).json()
        listing = doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["get"]
        declared = {p["name"]: p["schema"]["type"] for p in listing["parameters"]}
        assert declared["timeoutSeconds"] == "number"
        assert (await client.get(PODS_PATH, params={"timeoutSeconds": "0.5"})).status == 200
        core = await core_document(client)
        core_listing = core["paths"]["/api/v1/namespaces/{namespace}/pods"]["get"]
        assert {p["name"]: p["schema"]["type"] for p in core_listing["parameters"]}[
            "timeoutSeconds"
        ] == "integer"


def _protobuf_fields(data: bytes) -> dict[int, bytes]:
    """The length-delimited fields of a protobuf message (all the v2 document has)."""
    out, pos = {}, 0
    while pos < len(data):
        key, pos = data[pos], pos + 1
        assert key & 7 == 2, f"field {key >> 3} is not length-delimited"
        length = shift = 0
        while True:
            byte, pos = data[pos], pos + 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        out[key >> 3], pos = data[pos : pos + length], pos + length
    return out


class TestV2Document:
    """/openapi/v2, kubectl's validation fallback for kinds v3 does not list: defines none."""

    async def test_protobuf_as_client_go_asks(self, client: Client) -> None:
        accept = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
        resp = await client.get("/openapi/v2", headers={"Accept": accept})
        assert resp.status == 200
        document = _protobuf_fields(await resp.read())
        assert document[1] == b"2.0"  # swagger
        info = _protobuf_fields(document[2])
        assert info == {1: b"Kubernetes", 2: b"v1.32.4"}
        assert document[8] == b""  # paths: none
        assert 9 not in document  # definitions: none

    async def test_json_otherwise(self, client: Client) -> None:
        resp = await client.get("/openapi/v2")
        assert resp.status == 200
        assert await resp.json() == {
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.32.4"},
            "paths": {},
        }
