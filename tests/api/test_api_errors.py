"""Errors are Kubernetes `Status` objects with the API server's codes and reasons, never a crash.

Whatever a client sends (malformed JSON, the wrong shape, a field of the wrong type, a body too
big, deep or in an unknown format, a protobuf of a kind we do not read), the answer is a
`kind: Status` with the code and reason kubectl maps to its messages, and 422s carry
`details.causes` with field paths. A Hypothesis test posts arbitrary bodies to the pod endpoint
and requires a Status (4xx) or a created Pod, never a 500.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from apikit import (
    EVENTS,
    PODS,
    PROTOBUF,
    SECRETS,
    SERVICE_ACCOUNTS,
    Client,
    assert_status,
    create_pod,
    pb_field,
    pb_varint,
    pod_manifest,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _protobuf(kind: str, obj: bytes = b"") -> bytes:
    """A `runtime.Unknown` envelope as kubectl sends it: k8s magic, TypeMeta, raw object."""
    type_meta = pb_field(1, b"v1") + pb_field(2, kind.encode())
    return b"k8s\x00" + pb_field(1, type_meta) + pb_field(2, obj)


async def _post(client: Client, path: str, body: bytes, content_type: str | None) -> Any:
    headers = {} if content_type is None else {"Content-Type": content_type}
    skip = ["Content-Type"] if content_type is None else []
    resp = await client.post(path, data=body, headers=headers, skip_auto_headers=skip)
    text = await resp.text()
    assert "Traceback" not in text
    return resp.status, json.loads(text)


class TestBadRequest:
    """400 BadRequest: bodies that do not decode to one object."""

    async def test_malformed_json(self, client: Client) -> None:
        status, body = await _post(client, PODS, b'{"metadata": {', "application/json")
        assert status == 400
        assert_status(body, 400, "BadRequest")
        assert body["message"] == (
            "the object provided is unrecognized (must be of type Pod): couldn't get "
            'version/kind; json parse error: unexpected end of JSON input ({"metadata": {)'
        )

    @pytest.mark.parametrize(
        ("raw", "go_error"),
        [
            (b'{"metadata": }', "invalid character '}' looking for beginning of value"),
            (b'{"metadata" {}}', "invalid character '{' after object key"),
            (b'{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair"),
            (b'{"a": [1 2]}', "invalid character '2' after array element"),
            (b"{a: 1}", "invalid character 'a' looking for beginning of object key string"),
            (b'{"a": tru}', "invalid character '}' in literal true (expecting 'e')"),
            (b'{"a": 1}x', "invalid character 'x' after top-level value"),
            (b'{"a": "\\q"}', "invalid character 'q' in string escape code"),
        ],
    )
    async def test_json_syntax_errors_in_gos_words(
        self, client: Client, raw: bytes, go_error: str
    ) -> None:
        status, body = await _post(client, PODS, raw, "application/json")
        assert status == 400
        assert body["message"].startswith(
            "the object provided is unrecognized (must be of type Pod): couldn't get "
            f"version/kind; json parse error: {go_error} ("
        )

    async def test_a_patch_that_does_not_parse(self, client: Client) -> None:
        await create_pod(client, pod_manifest("x", "busybox:1.36"))
        resp = await client.patch(
            f"{PODS}/x", data=b'{"a": }', headers={"Content-Type": "application/merge-patch+json"}
        )
        assert resp.status == 400
        body = await resp.json()
        assert body["message"] == "invalid character '}' looking for beginning of value"

    @pytest.mark.parametrize("value", ["[1, 2]", '"pod"', "5", "null", "true"])
    async def test_a_body_that_is_not_an_object(self, client: Client, value: str) -> None:
        status, body = await _post(client, PODS, value.encode(), "application/json")
        assert status == 400
        assert_status(body, 400, "BadRequest", message_contains="must be a JSON or YAML object")

    async def test_an_empty_body(self, client: Client) -> None:
        status, body = await _post(client, PODS, b"  \n", "application/json")
        assert status == 400
        assert_status(body, 400, "BadRequest", message_contains="empty")

    async def test_invalid_utf8_is_read_as_go_reads_it(self, client: Client) -> None:
        # Go's decoder takes invalid UTF-8 in a string as U+FFFD: the name is then invalid.
        raw = b'{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a\xff"}}'
        status, body = await _post(client, PODS, raw, "application/json")
        assert status == 422
        assert_status(body, 422, "Invalid", message_contains='"a\ufffd"')
        assert "codec" not in body["message"]

    async def test_malformed_yaml(self, client: Client) -> None:
        status, body = await _post(client, PODS, b"metadata: [unclosed", "application/yaml")
        assert status == 400
        assert_status(body, 400, "BadRequest", message_contains="application/yaml")

    @pytest.mark.parametrize("depth", [150, 100_000])
    @pytest.mark.parametrize("content_type", ["application/json", "application/yaml"])
    async def test_a_body_nested_too_deep(
        self, client: Client, depth: int, content_type: str
    ) -> None:
        # Under the body limit, but deeper than any object: refused before anything recurses.
        body = b'{"metadata": {"name": "deep"}, "spec": ' + b"[" * depth + b"]" * depth + b"}"
        status, doc = await _post(client, PODS, body, content_type)
        assert status == 400
        assert_status(doc, 400, "BadRequest")

    async def test_yaml_without_a_json_representation(self, client: Client) -> None:
        body = b"metadata: {name: bin, annotations: {a: !!binary aGVsbG8=}}\nspec: {}\n"
        status, doc = await _post(client, PODS, body, "application/yaml")
        assert status == 400
        assert_status(doc, 400, "BadRequest", message_contains="JSON")

    async def test_a_body_of_another_kind(self, client: Client) -> None:
        resp = await client.post(PODS, json={"kind": "Secret", "metadata": {"name": "x"}})
        assert resp.status == 400
        assert_status(await resp.json(), 400, "BadRequest", message_contains="not a Pod")

    @pytest.mark.parametrize(
        ("path", "kind", "given", "version"),
        [
            (PODS, "Pod", "v2", "v1"),
            (PODS, "Pod", "apps/v1", "v1"),
            (SECRETS, "Secret", "v1beta1", "v1"),
            ("/apis/apps/v1/namespaces/default/deployments", "Deployment", "v1", "v1"),
            ("/apis/apps/v1/namespaces/default/replicasets", "ReplicaSet", "apps/v1beta2", "v1"),
        ],
    )
    async def test_a_body_of_another_api_version(
        self, client: Client, path: str, kind: str, given: str, version: str
    ) -> None:
        """What the python client's dict bodies may say; kubectl refuses it before sending."""
        body = {"apiVersion": given, "kind": kind, "metadata": {"name": "x"}}
        resp = await client.post(path, json=body)
        doc = await resp.json()
        assert_status(doc, 400, "BadRequest")
        assert doc["message"] == (
            f'{kind} in version "{version}" cannot be handled as a {kind}: no kind "{kind}" is '
            f'registered for version "{given}" in scheme "pkg/api/legacyscheme/scheme.go:30"'
        )
        assert (await client.get(f"{path}/x")).status == 404

    async def test_a_namespace_that_contradicts_the_path(self, client: Client) -> None:
        manifest = pod_manifest("p", "busybox:1.36")
        manifest["metadata"]["namespace"] = "other"
        resp = await client.post(PODS, json=manifest)
        assert resp.status == 400
        assert_status(await resp.json(), 400, "BadRequest", message_contains="namespace")

    async def test_an_unsupported_field_selector(self, client: Client) -> None:
        resp = await client.get(PODS, params={"fieldSelector": "spec.schedulerName=x"})
        assert resp.status == 400
        assert_status(await resp.json(), 400, "BadRequest", message_contains="field label")


class TestNotFound:
    """404 NotFound: unknown objects name their kind; unknown routes say so as kube-apiserver."""

    async def test_unknown_pod(self, client: Client) -> None:
        resp = await client.get(f"{PODS}/nope")
        assert resp.status == 404
        body = await resp.json()
        assert_status(body, 404, "NotFound")
        assert body["message"] == 'pods "nope" not found'
        assert body["details"] == {"name": "nope", "kind": "pods"}

    @pytest.mark.parametrize("method", ["DELETE", "PATCH"])
    async def test_unknown_pod_on_write(self, client: Client, method: str) -> None:
        resp = await client.request(
            method,
            f"{PODS}/nope",
            json={"metadata": {"labels": {"a": "b"}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert resp.status == 404
        assert_status(await resp.json(), 404, "NotFound", message_contains='pods "nope"')

    @pytest.mark.parametrize(
        ("path", "resource"),
        [
            (f"{SECRETS}/nope", "secrets"),
            (f"{SERVICE_ACCOUNTS}/nope", "serviceaccounts"),
            (f"{EVENTS}/nope", "events"),
            ("/api/v1/nodes/nope", "nodes"),
            ("/api/v1/namespaces/nope", "namespaces"),
        ],
    )
    async def test_unknown_object(self, client: Client, path: str, resource: str) -> None:
        resp = await client.get(path)
        assert resp.status == 404
        assert_status(await resp.json(), 404, "NotFound", message_contains=f'{resource} "nope"')

    @pytest.mark.parametrize(
        "path", ["/api/v1/deployments", "/apis/apps/v1/statefulsets", "/nope", "/api/v2"]
    )
    async def test_unknown_route(self, client: Client, path: str) -> None:
        resp = await client.get(path)
        assert resp.status == 404
        body = await resp.json()
        assert_status(body, 404, "NotFound")
        assert body["message"] == "the server could not find the requested resource"
        # The apiserver's generic 404 has empty details; kubectl reads them (`kubectl debug`
        # panicked on a Status without them).
        assert body["details"] == {}

    async def test_unserved_subresource_is_the_generic_not_found(self, client: Client) -> None:
        await create_pod(client, pod_manifest("web", "busybox:1.36"))
        resp = await client.patch(
            f"{PODS}/web/ephemeralcontainers",
            data="{}",
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        assert resp.status == 404
        body = await resp.json()
        assert_status(body, 404, "NotFound")
        assert body["details"] == {}


class TestMethodNotAllowed:
    """405: a known path, a verb it does not serve."""

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("PUT", PODS),
            ("PUT", "/api/v1/namespaces/default/events/e"),
            ("DELETE", "/api/v1/nodes"),
            ("POST", "/version"),
            ("POST", EVENTS),
        ],
    )
    async def test_verb_not_served(self, client: Client, method: str, path: str) -> None:
        resp = await client.request(method, path, json={})
        assert resp.status == 405
        assert_status(await resp.json(), 405, "MethodNotAllowed", message_contains=method)


class TestAlreadyExists:
    """409 AlreadyExists on a second create of the same name; the first object is untouched."""

    async def test_duplicate_pod(self, client: Client) -> None:
        first = await create_pod(client, pod_manifest("dup", "busybox:1.36"))
        resp = await client.post(PODS, json=pod_manifest("dup", "nginx:1.27"))
        assert resp.status == 409
        body = await resp.json()
        assert_status(body, 409, "AlreadyExists")
        assert body["message"] == 'pods "dup" already exists'
        assert body["details"] == {"name": "dup", "kind": "pods"}
        got = await (await client.get(f"{PODS}/dup")).json()
        assert got["metadata"]["uid"] == first["metadata"]["uid"]
        assert got["spec"]["containers"][0]["image"] == "busybox:1.36"

    @pytest.mark.parametrize(
        ("path", "body", "resource"),
        [
            (SECRETS, {"metadata": {"name": "s"}, "stringData": {"k": "v"}}, "secrets"),
            (SERVICE_ACCOUNTS, {"metadata": {"name": "sa"}}, "serviceaccounts"),
            ("/api/v1/namespaces", {"metadata": {"name": "team"}}, "namespaces"),
        ],
    )
    async def test_duplicate_object(
        self, client: Client, path: str, body: dict[str, Any], resource: str
    ) -> None:
        assert (await client.post(path, json=body)).status == 201
        resp = await client.post(path, json=body)
        assert resp.status == 409
        assert_status(await resp.json(), 409, "AlreadyExists", message_contains=resource)

    async def test_the_default_service_account_exists(self, client: Client) -> None:
        resp = await client.post(SERVICE_ACCOUNTS, json={"metadata": {"name": "default"}})
        assert resp.status == 409


class TestBodyLimit:
    """413 over `api.maxBodyBytes`; a body under it is served."""

    async def test_over_the_limit(self, api) -> None:
        client = await api(api={"maxBodyBytes": "2Ki"})
        manifest = pod_manifest("big", "busybox:1.36")
        manifest["metadata"]["annotations"] = {"blob": "x" * 4096}
        resp = await client.post(PODS, json=manifest)
        assert resp.status == 413
        assert_status(await resp.json(), 413, "RequestEntityTooLarge")
        assert (await client.get(f"{PODS}/big")).status == 404

    async def test_under_the_limit(self, api) -> None:
        client = await api(api={"maxBodyBytes": "2Ki"})
        resp = await client.post(PODS, json=pod_manifest("small", "busybox:1.36"))
        assert resp.status == 201


class TestUnsupportedMediaType:
    """415: a format we do not read, or a protobuf we cannot decode."""

    async def test_unknown_content_type(self, client: Client) -> None:
        for content_type in ("application/xml", "text/plain"):
            status, body = await _post(client, PODS, b"<pod/>", content_type)
            assert status == 415
            assert_status(body, 415, "UnsupportedMediaType")
            assert body["message"] == (
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
            )

    async def test_protobuf_of_an_unsupported_kind(self, client: Client) -> None:
        status, body = await _post(client, PODS, _protobuf("Pod"), PROTOBUF)
        assert status == 415
        assert_status(body, 415, "UnsupportedMediaType", message_contains='"Pod"')

    async def test_protobuf_without_the_magic(self, client: Client) -> None:
        status, body = await _post(client, SECRETS, b"\x0a\x02v1", PROTOBUF)
        assert status == 415
        assert_status(body, 415, "UnsupportedMediaType", message_contains="magic")

    @pytest.mark.parametrize(
        "obj",
        [
            # ObjectMeta.name sent as a varint of 2**40: must not become bytes(2**40).
            pb_field(1, pb_varint(1 << 3) + pb_varint(1 << 40)),
            # ObjectMeta.creationTimestamp far beyond year 9999.
            pb_field(1, pb_field(8, pb_varint(1 << 3) + pb_varint(1 << 62))),
            # ObjectMeta.labels entry as a varint.
            pb_field(1, pb_varint(11 << 3) + pb_varint(1 << 40)),
            # A truncated length-delimited field.
            pb_varint(1 << 3 | 2) + pb_varint(50) + b"short",
            # Secret.immutable (a bool) sent length-delimited.
            pb_field(5, b"yes"),
        ],
        ids=["varint-for-string", "timestamp-overflow", "varint-map", "truncated", "bytes-bool"],
    )
    async def test_malformed_protobuf(self, client: Client, obj: bytes) -> None:
        status, body = await _post(client, SECRETS, _protobuf("Secret", obj), PROTOBUF)
        assert status == 415
        assert_status(body, 415, "UnsupportedMediaType")


def _app(**fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": "busybox:1.36", **fields}


class TestInvalid:
    """422 Invalid with `details.causes`: field path, cause type and the API server's text."""

    @pytest.mark.parametrize(
        ("spec", "name", "field", "reason"),
        [
            ({"containers": []}, "p", "spec.containers", "FieldValueRequired"),
            ({}, "p", "spec.containers", "FieldValueRequired"),
            ({"containers": [_app()]}, "Bad_Name", "metadata.name", "FieldValueInvalid"),
            (
                {"containers": [_app(name="App_1")]},
                "p",
                "spec.containers[0].name",
                "FieldValueInvalid",
            ),
            (
                {"containers": [_app(imagePullPolicy="Sometimes")]},
                "p",
                "spec.containers[0].imagePullPolicy",
                "FieldValueNotSupported",
            ),
            (
                {"containers": [{"name": "app"}]},
                "p",
                "spec.containers[0].image",
                "FieldValueRequired",
            ),
        ],
        ids=[
            "no-containers",
            "no-spec",
            "bad-pod-name",
            "bad-container-name",
            "bad-pull-policy",
            "no-image",
        ],
    )
    async def test_invalid_pod(
        self, client: Client, spec: dict[str, Any], name: str, field: str, reason: str
    ) -> None:
        resp = await client.post(PODS, json={"metadata": {"name": name}, "spec": spec})
        assert resp.status == 422
        body = await resp.json()
        assert_status(body, 422, "Invalid", message_contains=f'Pod "{name}" is invalid')
        assert body["details"]["kind"] == "Pod"
        assert body["details"]["name"] == name
        causes = {(c["field"], c["reason"]) for c in body["details"]["causes"]}
        assert (field, reason) in causes
        assert field in body["message"]
        assert (await client.get(f"{PODS}/{name}")).status == 404

    async def test_unsupported_policy_lists_the_supported_ones(self, client: Client) -> None:
        manifest = pod_manifest("p", "busybox:1.36", policy="Sometimes")
        body = await (await client.post(PODS, json=manifest)).json()
        (cause,) = body["details"]["causes"]
        assert cause["message"] == (
            'Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"'
        )

    async def test_every_cause_is_reported(self, client: Client) -> None:
        body = {
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "A"}, {"name": "b", "image": "x", "imagePullPolicy": "No"}]
            },
        }
        doc = await (await client.post(PODS, json=body)).json()
        fields = [c["field"] for c in doc["details"]["causes"]]
        assert fields == [
            "spec.containers[0].name",
            "spec.containers[0].image",
            "spec.containers[1].imagePullPolicy",
        ]


class TestForbidden:
    """403: a pod naming a service account that does not exist (ServiceAccount admission)."""

    async def test_missing_service_account(self, client: Client) -> None:
        resp = await client.post(
            PODS, json=pod_manifest("p", "busybox:1.36", serviceAccountName="ghost")
        )
        assert resp.status == 403
        body = await resp.json()
        assert_status(body, 403, "Forbidden", message_contains='serviceaccount "ghost" not found')
        assert (await client.get(f"{PODS}/p")).status == 404


class TestFieldsOfTheWrongType:
    """Fields of the wrong JSON type are refused with a Status, and never break later reads."""

    @pytest.mark.parametrize(
        ("metadata", "spec"),
        [
            ({"name": "p", "labels": ["app"]}, {}),
            ({"name": "p", "labels": {"app": 1}}, {}),
            ({"name": "p", "annotations": "a=b"}, {}),
            ({"name": "p"}, {"serviceAccountName": ["builder"]}),
            ({"name": "p"}, {"serviceAccountName": {"name": "builder"}}),
            ({"name": "p"}, {"serviceAccountName": 5}),
        ],
    )
    async def test_pod_create(
        self, client: Client, metadata: dict[str, Any], spec: dict[str, Any]
    ) -> None:
        body = {
            "metadata": metadata,
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], **spec},
        }
        resp = await client.post(PODS, json=body)
        assert resp.status == 400
        assert_status(await resp.json(), 400, "BadRequest")
        for params in ({}, {"labelSelector": "app=web"}):
            assert (await client.get(PODS, params=params)).status == 200

    async def test_null_init_containers_are_no_init_containers(self, client: Client) -> None:
        body = pod_manifest("p", "busybox:1.36", initContainers=None)
        doc = await create_pod(client, body)
        assert "initContainerStatuses" not in doc["status"]

    async def test_yaml_dates_stay_strings(self, client: Client) -> None:
        body = (
            b"metadata:\n  name: dated\n  annotations: {built: 2024-01-01}\n"
            b"spec:\n  containers: [{name: c, image: busybox:1.36}]\n"
        )
        status, doc = await _post(client, PODS, body, "application/yaml")
        assert status == 201, doc
        assert doc["metadata"]["annotations"] == {"built": "2024-01-01"}

    @pytest.mark.parametrize(
        "patch",
        [
            {"metadata": None},
            {"metadata": ["labels"]},
            {"metadata": {"labels": "app=web"}},
            {"metadata": {"labels": {"app": ["web"]}}},
        ],
    )
    async def test_pod_merge_patch(self, client: Client, patch: dict[str, Any]) -> None:
        await create_pod(client, pod_manifest("p", "busybox:1.36", labels={"app": "web"}))
        resp = await client.patch(
            f"{PODS}/p", json=patch, headers={"Content-Type": "application/merge-patch+json"}
        )
        assert resp.status == 400
        assert_status(await resp.json(), 400, "BadRequest")
        got = await client.get(f"{PODS}/p")
        assert got.status == 200
        assert (await got.json())["metadata"]["labels"] == {"app": "web"}
        listed = await (await client.get(PODS, params={"labelSelector": "app=web"})).json()
        assert [p["metadata"]["name"] for p in listed["items"]] == ["p"]

    @pytest.mark.parametrize(
        "ops",
        [
            [{"op": "replace", "path": "/metadata", "value": 5}],
            [{"op": "remove", "path": "/metadata"}],
            [{"op": "add", "path": "/metadata/labels", "value": [1]}],
        ],
    )
    async def test_pod_json_patch(self, client: Client, ops: list[dict[str, Any]]) -> None:
        await create_pod(client, pod_manifest("p", "busybox:1.36"))
        resp = await client.patch(
            f"{PODS}/p",
            data=json.dumps(ops),
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert resp.status == 400
        assert_status(await resp.json(), 400, "BadRequest")
        assert (await client.get(f"{PODS}/p")).status == 200

    @pytest.mark.parametrize(
        "body",
        [
            {"metadata": {"name": "s"}, "data": "abc"},
            {"metadata": {"name": "s"}, "data": 5},
            {"metadata": {"name": "s"}, "stringData": ["k", "v"]},
            {"metadata": {"name": "s", "labels": "x"}},
        ],
    )
    async def test_secret_create(self, client: Client, body: dict[str, Any]) -> None:
        resp = await client.post(SECRETS, json=body)
        assert resp.status == 400
        assert_status(await resp.json(), 400, "BadRequest")
        assert (await client.get(SECRETS)).status == 200

    @pytest.mark.parametrize("patch", [{"metadata": None}, {"metadata": {"annotations": 1}}])
    async def test_secret_and_service_account_patch(
        self, client: Client, patch: dict[str, Any]
    ) -> None:
        for path in (SECRETS, SERVICE_ACCOUNTS):
            assert (await client.post(path, json={"metadata": {"name": "x"}})).status == 201
            resp = await client.patch(
                f"{path}/x", json=patch, headers={"Content-Type": "application/merge-patch+json"}
            )
            assert resp.status == 400, path
            assert_status(await resp.json(), 400, "BadRequest")
            assert (await client.get(f"{path}/x")).status == 200
            assert (await client.get(path)).status == 200

    @pytest.mark.parametrize("refs", [[{"name": 5}], [{"name": ""}], "regcred", [["regcred"]]])
    async def test_service_account_pull_secret_refs(self, client: Client, refs: Any) -> None:
        resp = await client.post(
            SERVICE_ACCOUNTS, json={"metadata": {"name": "sa"}, "imagePullSecrets": refs}
        )
        assert resp.status == 422
        body = await resp.json()
        assert_status(body, 422, "Invalid")
        assert body["details"]["causes"][0]["field"] == "imagePullSecrets"

    @pytest.mark.parametrize("value", ["abc", "nan", "NaN"])
    async def test_watch_timeout_that_is_not_a_number(self, client: Client, value: str) -> None:
        resp = await client.get(PODS, params={"watch": "true", "timeoutSeconds": value})
        assert resp.status == 400
        assert_status(await resp.json(), 400, "BadRequest", message_contains="timeoutSeconds")

    @pytest.mark.parametrize(
        "path",
        [PODS, SECRETS, SERVICE_ACCOUNTS, EVENTS, "/api/v1/nodes", "/api/v1/namespaces"],
    )
    async def test_list_timeout_that_is_not_a_number(self, client: Client, path: str) -> None:
        # A plain list ignored a malformed timeoutSeconds (found by schemathesis): refused now.
        resp = await client.get(path, params={"timeoutSeconds": "abc"})
        assert_status(await resp.json(), 400, "BadRequest", message_contains="timeoutSeconds")
        assert (await client.get(path, params={"timeoutSeconds": "30"})).status == 200


# -- property: never a 500 ---------------------------------------------------------------------
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a plausible value, sometimes any JSON value at all."""
    return st.one_of(valid, valid, valid, _json)


_container = st.fixed_dictionaries(
    {
        "name": _mostly(st.sampled_from(["c", "app", "Bad_Name", ""])),
        "image": _mostly(
            st.sampled_from(["busybox:1.36", "nginx", "nope.example/x:1", "UPPER:1", "", " a"])
        ),
    },
    optional={
        "imagePullPolicy": _mostly(st.sampled_from(["Always", "IfNotPresent", "Never", "x"])),
    },
)
_metadata = st.fixed_dictionaries(
    {"name": _mostly(st.sampled_from(["p", "q.r", "Bad_Name", ""]))},
    optional={
        "generateName": _mostly(st.sampled_from(["web-", ""])),
        "namespace": _mostly(st.sampled_from(["default", "other", ""])),
        "labels": _mostly(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)),
        "annotations": _json,
    },
)
_spec = st.fixed_dictionaries(
    {"containers": _mostly(st.lists(_container, min_size=1, max_size=2))},
    optional={
        "initContainers": _mostly(st.lists(_container, max_size=1)),
        "imagePullSecrets": _mostly(st.lists(st.fixed_dictionaries({"name": _json}), max_size=2)),
        "serviceAccountName": _mostly(st.sampled_from(["default", "ghost", ""])),
    },
)
_pod_like = st.fixed_dictionaries(
    {"metadata": _mostly(_metadata), "spec": _mostly(_spec)},
    optional={
        "apiVersion": _mostly(st.just("v1")),
        "kind": _mostly(st.sampled_from(["Pod", "Secret", ""])),
    },
)
_content_types = st.sampled_from(
    [None, "application/json", "application/yaml", PROTOBUF, "text/plain", "application/x-foo"]
)


def _answer_is_a_status_or_a_pod(status: int, text: str) -> None:
    assert status != 500, text
    assert "Traceback" not in text
    doc = json.loads(text)
    if status == 201:
        assert doc["kind"] == "Pod"
        assert doc["metadata"]["namespace"] == "default"
    else:
        assert 400 <= status < 500
        assert doc["kind"] == "Status"
        assert doc["code"] == status


_PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class TestNeverA500:
    """Arbitrary bodies to the pod create endpoint: a Status (4xx) or a created Pod (201)."""

    @_PROPERTY
    @given(body=_pod_like | _json)
    async def test_arbitrary_json(self, client: Client, body: Any) -> None:
        resp = await client.post(
            PODS, data=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        _answer_is_a_status_or_a_pod(resp.status, await resp.text())

    @_PROPERTY
    @given(body=st.binary(max_size=200), content_type=_content_types)
    async def test_arbitrary_bytes(
        self, client: Client, body: bytes, content_type: str | None
    ) -> None:
        headers = {} if content_type is None else {"Content-Type": content_type}
        skip = ["Content-Type"] if content_type is None else []
        resp = await client.post(PODS, data=body, headers=headers, skip_auto_headers=skip)
        _answer_is_a_status_or_a_pod(resp.status, await resp.text())

    @_PROPERTY
    @given(body=st.binary(max_size=120))
    async def test_arbitrary_protobuf_after_the_magic(self, client: Client, body: bytes) -> None:
        resp = await client.post(
            SECRETS, data=b"k8s\x00" + body, headers={"Content-Type": PROTOBUF}
        )
        assert resp.status != 500, await resp.text()
        assert (await resp.json())["kind"] in {"Status", "Secret"}


class TestForbiddenPodUpdate:
    """A pod's spec beyond its images is immutable: the apiserver's text, then a spec diff."""

    async def test_the_diff_names_each_changed_field(self, client: Client) -> None:
        await create_pod(client, pod_manifest("web", "busybox:1.36"))
        resp = await client.patch(
            f"{PODS}/web",
            json={"spec": {"restartPolicy": "Never", "dnsPolicy": "Default"}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert resp.status == 422
        body = await resp.json()
        message = body["message"]
        assert message.startswith(
            'Pod "web" is invalid: spec: Forbidden: pod updates may not change fields other '
            "than `spec.containers[*].image`,"
        )
        assert message.endswith(
            "  core.PodSpec{\n"
            '- \tDNSPolicy: "ClusterFirst",\n'
            '+ \tDNSPolicy: "Default",\n'
            '- \tRestartPolicy: "Always",\n'
            '+ \tRestartPolicy: "Never",\n'
            "  }"
        )
        assert "[" not in message.split("\n", 1)[1]  # no Python list


class TestPatchBodiesOfTheWrongShape:
    """A patch body that parses but is not what its type needs: the apiserver's Go texts."""

    @pytest.mark.parametrize(
        ("ctype", "raw", "message"),
        [
            (
                "application/json-patch+json",
                b'{"op": "add"}',
                "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
            ),
            ("application/merge-patch+json", b"[1]", "Invalid JSON Patch"),
            (
                "application/strategic-merge-patch+json",
                b'"x"',
                "json: cannot unmarshal string into Go value of type map[string]interface {}",
            ),
        ],
    )
    async def test_wrong_shape(self, client: Client, ctype: str, raw: bytes, message: str) -> None:
        await create_pod(client, pod_manifest("x", "busybox:1.36"))
        resp = await client.patch(f"{PODS}/x", data=raw, headers={"Content-Type": ctype})
        assert resp.status == 400
        assert (await resp.json())["message"] == message

    async def test_a_json_patch_op_that_fails_is_the_generic_422(self, client: Client) -> None:
        # As the apiserver: NewGenericServerResponse(422, ...) without causes, empty details.
        await create_pod(client, pod_manifest("x", "busybox:1.36"))
        ops = [{"op": "remove", "path": "/metadata/labels/nope"}]
        resp = await client.patch(
            f"{PODS}/x", json=ops, headers={"Content-Type": "application/json-patch+json"}
        )
        assert resp.status == 422
        body = await resp.json()
        assert body["message"] == "the server rejected our request due to an error in our request"
        assert body["details"] == {}


class TestPatchMediaTypeAndOptions:
    """A PATCH's media type and PatchOptions, checked first as the apiserver's handler does."""

    @pytest.mark.parametrize(
        "path", [f"{PODS}/x", "/apis/apps/v1/namespaces/default/deployments/x/scale"]
    )
    async def test_plain_json_is_415(self, client: Client, path: str) -> None:
        resp = await client.patch(path, data=b"{}", headers={"Content-Type": "application/json"})
        assert resp.status == 415
        body = await resp.json()
        assert_status(body, 415, "UnsupportedMediaType")
        assert body["message"] == (
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, "
            "application/strategic-merge-patch+json, application/apply-patch+yaml"
        )

    async def test_apply_without_a_field_manager_is_422(self, client: Client) -> None:
        resp = await client.patch(
            f"{PODS}/x", data=b"{}", headers={"Content-Type": "application/apply-patch+yaml"}
        )
        assert resp.status == 422
        body = await resp.json()
        assert body["message"] == (
            'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required '
            "for apply patch"
        )
        assert body["details"] == {
            "group": "meta.k8s.io",
            "kind": "PatchOptions",
            "causes": [
                {
                    "reason": "FieldValueRequired",
                    "message": "Required value: is required for apply patch",
                    "field": "fieldManager",
                }
            ],
        }

    async def test_force_is_for_apply_alone(self, client: Client) -> None:
        resp = await client.patch(
            f"{PODS}/x?force=true",
            data=b"{}",
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert resp.status == 422
        assert (await resp.json())["message"] == (
            'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified '
            "for non-apply patch"
        )
