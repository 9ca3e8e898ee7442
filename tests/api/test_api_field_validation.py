"""`fieldValidation=Strict|Warn|Ignore` on writes, with the apiserver's texts.

Bodies are sent as raw text where the test needs what a dict cannot hold (a duplicate key).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from apikit import PODS, SECRETS, SERVICE_ACCOUNTS, Client, assert_status, pod_manifest

from kubesim_images.daemon.fieldvalidation import Findings, Pairs, walk

TYPO_POD = pod_manifest("typo", "busybox:1.36")
TYPO_POD["spec"]["containers"][0]["imagePullPolicyy"] = "Never"
JSON = {"Content-Type": "application/json"}


def warnings(resp: Any) -> list[str]:
    return resp.headers.getall("Warning", [])


async def post(client: Client, path: str, body: Any, mode: str | None, **headers: str) -> Any:
    params = {"fieldValidation": mode} if mode else {}
    data = body if isinstance(body, str) else json.dumps(body)
    return await client.post(path, data=data, params=params, headers=headers or JSON)


class TestCreate:
    async def test_strict_refuses_a_typo_with_the_apiserver_text(self, client: Client) -> None:
        resp = await post(client, PODS, TYPO_POD, "Strict")
        assert_status(await resp.json(), 400, "BadRequest")
        assert (await resp.json())["message"] == (
            'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
            'unknown field "spec.containers[0].imagePullPolicyy"'
        )
        assert (await client.get(f"{PODS}/typo")).status == 404  # nothing was written

    async def test_warn_is_the_default_and_says_so_in_warning_headers(self, client: Client) -> None:
        resp = await post(client, PODS, TYPO_POD, None)
        assert resp.status == 201
        assert warnings(resp) == ['299 - "unknown field \\"spec.containers[0].imagePullPolicyy\\""']
        created = await resp.json()
        assert "imagePullPolicyy" not in created["spec"]["containers"][0]

    async def test_ignore_accepts_silently(self, client: Client) -> None:
        resp = await post(client, PODS, TYPO_POD, "Ignore")
        assert resp.status == 201
        assert warnings(resp) == []
        stored = await (await client.get(f"{PODS}/typo")).json()
        assert "imagePullPolicyy" not in stored["spec"]["containers"][0]  # dropped, as upstream

    async def test_duplicates_and_unknowns_in_document_order(self, client: Client) -> None:
        raw = (
            '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dup", "foo": 1},'
            ' "spec": {"containers": [{"name": "a", "image": "busybox:1.36",'
            ' "imagePullPolicy": "Always", "imagePullPolicy": "Never",'
            ' "bogus": 1, "bogus": 2}]}}'
        )
        resp = await post(client, PODS, raw, "Strict")
        assert_status(await resp.json(), 400, "BadRequest")
        assert (await resp.json())["message"].endswith(
            'strict decoding error: unknown field "metadata.foo", '
            'duplicate field "spec.containers[0].imagePullPolicy", '
            'unknown field "spec.containers[0].bogus"'
        )
        resp = await post(client, PODS, raw, "Warn")
        assert resp.status == 201
        assert len(warnings(resp)) == 3
        assert (await resp.json())["spec"]["containers"][0]["imagePullPolicy"] == "Never"

    async def test_yaml_duplicates_are_reported_by_line(self, client: Client) -> None:
        raw = (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: y\nspec:\n  containers:\n"
            "  - name: a\n    image: busybox:1.36\n    image: busybox:1.36\n    tty: true\n"
            "  extra: 1\n"
        )
        resp = await post(client, PODS, raw, "Strict", **{"Content-Type": "application/yaml"})
        message = (await resp.json())["message"]
        assert resp.status == 400
        assert message.endswith(
            'strict decoding error: line 9: key "image" already set in map, '
            'unknown field "spec.extra"'
        )

    async def test_maps_and_schemaless_objects_take_any_key(self, client: Client) -> None:
        body = pod_manifest("maps", "busybox:1.36", labels={"any.key/x": "1"})
        body["metadata"]["annotations"] = {"whatever": "x"}
        body["metadata"]["managedFields"] = [{"manager": "m", "fieldsV1": {"f:spec": {".": {}}}}]
        body["spec"]["nodeSelector"] = {"disk": "ssd"}
        resp = await post(client, PODS, body, "Strict")
        assert resp.status == 201, await resp.json()

    @pytest.mark.parametrize(
        ("path", "kind", "body"),
        [
            (SECRETS, "Secret", {"metadata": {"name": "s"}, "data": {}, "typo": 1}),
            (SERVICE_ACCOUNTS, "ServiceAccount", {"metadata": {"name": "sa"}, "typo": 1}),
            ("/api/v1/namespaces", "Namespace", {"metadata": {"name": "n"}, "typo": 1}),
        ],
    )
    async def test_every_kind_is_validated(
        self, client: Client, path: str, kind: str, body: dict[str, Any]
    ) -> None:
        resp = await post(client, path, {"apiVersion": "v1", "kind": kind, **body}, "Strict")
        assert_status(await resp.json(), 400, "BadRequest")
        assert (await resp.json())["message"] == (
            f'{kind} in version "v1" cannot be handled as a {kind}: '
            'strict decoding error: unknown field "typo"'
        )

    async def test_an_unknown_directive_is_refused(self, client: Client) -> None:
        resp = await post(client, PODS, TYPO_POD, "Loose")
        body = await resp.json()
        assert_status(body, 422, "Invalid")
        assert body["message"] == (
            'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: '
            '"Loose": supported values: "", "Ignore", "Strict", "Warn"'
        )

    async def test_a_flood_of_unknown_fields_is_reported_briefly(self, client: Client) -> None:
        body = pod_manifest("flood", "busybox:1.36")
        body["spec"].update({f"x{i}": i for i in range(5000)})
        resp = await post(client, PODS, body, "Strict")
        assert resp.status == 400
        assert (await resp.json())["message"].count("unknown field") == 100
        resp = await post(client, PODS, body, "Warn")
        assert resp.status == 201
        assert len(warnings(resp)) == 100


class TestPatch:
    async def test_merge_patch_strict(self, client: Client) -> None:
        assert (await post(client, PODS, pod_manifest("p", "busybox:1.36"), None)).status == 201
        resp = await client.patch(
            f"{PODS}/p",
            params={"fieldValidation": "Strict"},
            data=json.dumps({"metadata": {"labelz": {"a": "b"}}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        body = await resp.json()
        assert_status(body, 400, "BadRequest")
        assert body["message"] == 'strict decoding error: unknown field "metadata.labelz"'

    async def test_strategic_merge_directives_are_not_fields(self, client: Client) -> None:
        sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "d"}}
        assert (await post(client, SERVICE_ACCOUNTS, sa, None)).status == 201
        pull = [{"name": "regcred"}]
        patch = {"imagePullSecrets": pull, "$setElementOrder/imagePullSecrets": pull}
        resp = await client.patch(
            f"{SERVICE_ACCOUNTS}/d",
            params={"fieldValidation": "Strict"},
            data=json.dumps(patch),
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        assert resp.status == 200, await resp.json()

    async def test_json_patch_values_are_checked_where_they_land(self, client: Client) -> None:
        assert (await post(client, PODS, pod_manifest("j", "busybox:1.36"), None)).status == 201
        ops = (
            '[{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}, "foo": 1},'
            ' {"op": "add", "path": "/spec/containers/0/imagePullPolicyy", "value": "Never"}]'
        )
        resp = await client.patch(
            f"{PODS}/j",
            params={"fieldValidation": "Strict"},
            data=ops,
            headers={"Content-Type": "application/json-patch+json"},
        )
        body = await resp.json()
        assert_status(body, 400, "BadRequest")
        assert body["message"] == (
            'strict decoding error: json patch unknown field "foo", '
            'unknown field "spec.containers[0].imagePullPolicyy"'
        )

    async def test_server_side_apply_refuses_undeclared_fields_whatever_the_directive(
        self, client: Client
    ) -> None:
        assert (await post(client, PODS, pod_manifest("a", "busybox:1.36"), None)).status == 201
        applied = "spec:\n  containers:\n  - name: c0\n    imagePullPolicyy: Never\n"
        resp = await client.patch(
            f"{PODS}/a",
            params={"fieldValidation": "Ignore", "fieldManager": "kubectl"},
            data=applied,
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        body = await resp.json()
        assert_status(body, 400, "BadRequest")
        assert body["message"] == (
            "failed to create typed patch object (default/a; /v1, Kind=Pod): "
            '.spec.containers[name="c0"].imagePullPolicyy: field not declared in schema'
        )

    async def test_a_clients_replace_marker_is_an_unknown_field(self, client: Client) -> None:
        """`__replace__` is the daemon's own marker for a JSON patch's result: from a client it
        is an unknown field, dropped (Warn) or refused (Strict), never a replacement."""
        body = pod_manifest("m", "busybox:1.36", labels={"app": "web"})
        assert (await post(client, PODS, body, None)).status == 201
        patch = json.dumps({"__replace__": {"metadata": 5}})
        headers = {"Content-Type": "application/merge-patch+json"}
        resp = await client.patch(f"{PODS}/m", data=patch, headers=headers)
        assert resp.status == 200
        assert warnings(resp) == ['299 - "unknown field \\"__replace__\\""']
        assert (await resp.json())["metadata"]["labels"] == {"app": "web"}
        resp = await client.patch(
            f"{PODS}/m", data=patch, headers=headers, params={"fieldValidation": "Strict"}
        )
        assert_status(await resp.json(), 400, "BadRequest")
        resp = await client.patch(
            f"{PODS}/m", data=patch, headers=headers, params={"fieldValidation": "Ignore"}
        )
        assert resp.status == 200


class TestWalk:
    """The schema walk itself, on shapes core/v1 has few of (embedded objects kept whole)."""

    SCHEMA: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "env": {"type": "object", "additionalProperties": {"type": "string"}},
                    "items": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    },
                },
            }
        },
    }

    def findings(self, raw: str) -> list[str]:
        out = Findings()
        walk(json.loads(raw, object_pairs_hook=Pairs), self.SCHEMA, (), out, smp=False)
        return out.problems

    def test_preserved_and_map_fields_take_anything(self) -> None:
        raw = '{"spec": {"raw": {"any": {"thing": 1}}, "env": {"A": "1", "B": "2"}}}'
        assert self.findings(raw) == []

    def test_paths_name_list_items_and_map_keys(self) -> None:
        raw = (
            '{"spec": {"items": [{"name": "a"}, {"name": "b", "nam": "c"}],'
            ' "env": {"A": "1", "A": "2"}, "other": 1}}'
        )
        assert self.findings(raw) == [
            'unknown field "spec.items[1].nam"',
            'duplicate field "spec.env.A"',
            'unknown field "spec.other"',
        ]


async def test_a_warning_header_stays_one_line_whatever_the_field_name(client: Client) -> None:
    body = pod_manifest("odd", "busybox:1.36")
    body["spec"]['bad\r\nX-Injected: 1\t"é'] = 1
    resp = await post(client, PODS, body, "Warn")
    assert resp.status == 201
    assert "X-Injected" not in resp.headers
    assert warnings(resp) == [
        '299 - "unknown field \\"spec.bad\\r\\nX-Injected: 1\\t\\"\\u00e9\\""'
    ]
