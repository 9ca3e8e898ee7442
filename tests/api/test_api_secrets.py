"""Pull secrets and service accounts through the API, and the private pulls they make possible.

`kubectl create secret docker-registry` and `kubectl create serviceaccount` send protobuf (the
captured bodies are in data/); JSON works too. A secret's values are never echoed in any answer.
A service account's `imagePullSecrets` are copied into pods that name it and have none of their
own (ServiceAccount admission), and a private image in the registry's catalogue pulls only with
matching credentials.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from apikit import (
    DATA,
    PODS,
    PROTOBUF,
    SECRETS,
    SERVICE_ACCOUNTS,
    TABLE,
    Client,
    assert_status,
    create_pod,
    pod_manifest,
    wait_for,
)

PRIVATE = "registry.example.com/team/private:v1"
# A failed sync is not retried within a test: ErrImagePull stays until the test reads it.
NO_REQUEUE = {"errorRequeue": "1h", "jitterFactor": 0}
PRIVATE_REGISTRY = {
    "images": [
        {
            "name": PRIVATE,
            "layers": [{"size": "1Mi"}],
            "auth": {"username": "robot", "password": "s3cret"},
        }
    ]
}
PASSWORD = "s3cret"
AUTH = base64.b64encode(b"robot:s3cret").decode()


def docker_config_secret(
    name: str, *, registry: str = "registry.example.com", password: str = PASSWORD
) -> dict[str, Any]:
    config = {
        "auths": {
            registry: {
                "username": "robot",
                "password": password,
                "auth": base64.b64encode(f"robot:{password}".encode()).decode(),
            }
        }
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }


async def _post(client: Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(path, json=body)
    doc = await resp.json()
    assert resp.status == 201, doc
    return doc


async def _post_protobuf(client: Client, path: str, file: str) -> tuple[int, str]:
    resp = await client.post(
        path, data=(DATA / file).read_bytes(), headers={"Content-Type": PROTOBUF}
    )
    return resp.status, await resp.text()


async def _container_state(client: Client, pod: str) -> dict[str, Any]:
    doc = await (await client.get(f"{PODS}/{pod}")).json()
    (cs,) = doc["status"]["containerStatuses"]
    return cs["state"]


async def _wait_running(client: Client, pod: str) -> None:
    async def running() -> bool:
        return "running" in await _container_state(client, pod)

    await wait_for(running)


class TestSecrets:
    """Docker config secrets are stored, validated, and never echoed."""

    async def test_create_from_json(self, client: Client) -> None:
        doc = await _post(client, SECRETS, docker_config_secret("regcred"))
        assert doc["kind"] == "Secret"
        assert doc["type"] == "kubernetes.io/dockerconfigjson"
        assert doc["metadata"]["name"] == "regcred"
        assert doc["metadata"]["uid"]
        assert doc["data"] == {".dockerconfigjson": ""}

    async def test_create_from_kubectls_protobuf(self, client: Client) -> None:
        status, text = await _post_protobuf(client, SECRETS, "pb_POST_secrets.bin")
        assert status == 201, text
        doc = json.loads(text)
        assert doc["metadata"]["name"] == "regcred"
        assert doc["type"] == "kubernetes.io/dockerconfigjson"
        assert list(doc["data"]) == [".dockerconfigjson"]
        # The captured body's password "p" and auth "dTpw" (u:p) must not come back.
        assert "dTpw" not in text
        assert "eyJhdXRocyI6" not in text  # the base64 of '{"auths":'
        status, text = await _post_protobuf(client, SECRETS, "pb_POST_secrets.bin")
        assert status == 409
        assert_status(json.loads(text), 409, "AlreadyExists")

    async def test_values_never_appear_in_any_answer(self, client: Client) -> None:
        body = docker_config_secret("regcred")
        encoded = body["data"][".dockerconfigjson"]
        opaque = {"metadata": {"name": "plain"}, "stringData": {"token": "t0psecret"}}
        answers = [
            await (await client.post(SECRETS, json=body)).text(),
            await (await client.post(SECRETS, json=opaque)).text(),
        ]
        for path in (f"{SECRETS}/regcred", f"{SECRETS}/plain", SECRETS, "/api/v1/secrets"):
            answers.append(await (await client.get(path)).text())
            answers.append(await (await client.get(path, headers={"Accept": TABLE})).text())
        patch = {"metadata": {"labels": {"team": "a"}}}
        answers.append(await (await client.patch(f"{SECRETS}/regcred", json=patch)).text())
        answers.append(await (await client.delete(f"{SECRETS}/plain")).text())
        for text in answers:
            for secret in (
                PASSWORD,
                AUTH,
                encoded,
                "t0psecret",
                base64.b64encode(b"t0psecret").decode(),
            ):
                assert secret not in text
        listed = json.loads(answers[6])
        assert {s["metadata"]["name"]: s["data"] for s in listed["items"]} == {
            "plain": {"token": ""},
            "regcred": {".dockerconfigjson": ""},
        }

    async def test_table_counts_the_keys(self, client: Client) -> None:
        await _post(client, SECRETS, docker_config_secret("regcred"))
        table = await (await client.get(SECRETS, headers={"Accept": TABLE})).json()
        (row,) = table["rows"]
        assert row["cells"][:3] == ["regcred", "kubernetes.io/dockerconfigjson", "1"]

    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            (base64.b64encode(b"{not json").decode(), "FieldValueInvalid"),
            ("%%% not base64 %%%", "FieldValueInvalid"),
            (None, "FieldValueRequired"),
        ],
        ids=["invalid-json", "invalid-base64", "missing-key"],
    )
    async def test_invalid_docker_config(
        self, client: Client, content: str | None, reason: str
    ) -> None:
        body = docker_config_secret("broken")
        body["data"] = {} if content is None else {".dockerconfigjson": content}
        resp = await client.post(SECRETS, json=body)
        assert resp.status == 422
        doc = await resp.json()
        assert_status(doc, 422, "Invalid", message_contains='Secret "broken" is invalid')
        (cause,) = doc["details"]["causes"]
        assert (cause["field"], cause["reason"]) == ("data[.dockerconfigjson]", reason)
        assert "{not json" not in json.dumps(doc)
        assert (await client.get(f"{SECRETS}/broken")).status == 404

    async def test_delete(self, client: Client) -> None:
        created = await _post(client, SECRETS, docker_config_secret("regcred"))
        resp = await client.delete(f"{SECRETS}/regcred")
        assert resp.status == 200
        doc = await resp.json()
        assert (doc["kind"], doc["status"]) == ("Status", "Success")
        assert doc["details"]["uid"] == created["metadata"]["uid"]
        assert (await client.get(f"{SECRETS}/regcred")).status == 404


class TestServiceAccounts:
    """Service accounts from kubectl's protobuf, patched with pull secrets, admitted into pods."""

    async def test_the_default_account_exists(self, client: Client) -> None:
        resp = await client.get(f"{SERVICE_ACCOUNTS}/default")
        assert resp.status == 200
        assert (await resp.json())["kind"] == "ServiceAccount"

    async def test_create_from_kubectls_protobuf(self, client: Client) -> None:
        status, text = await _post_protobuf(client, SERVICE_ACCOUNTS, "pb_POST_serviceaccounts.bin")
        assert status == 201, text
        doc = json.loads(text)
        assert (doc["kind"], doc["metadata"]["name"]) == ("ServiceAccount", "builder")
        listed = await (await client.get(SERVICE_ACCOUNTS)).json()
        assert [a["metadata"]["name"] for a in listed["items"]] == ["builder", "default"]
        status, text = await _post_protobuf(client, SERVICE_ACCOUNTS, "pb_POST_serviceaccounts.bin")
        assert status == 409

    async def test_namespace_from_kubectls_protobuf(self, client: Client) -> None:
        status, text = await _post_protobuf(client, "/api/v1/namespaces", "pb_POST_namespaces.bin")
        assert status == 201, text
        assert json.loads(text)["metadata"]["name"] == "ns1"
        assert (await client.get("/api/v1/namespaces/ns1")).status == 200

    @pytest.fixture
    async def builder(self, client: Client) -> Client:
        """`builder` patched with `regcred`, as `kubectl patch serviceaccount` does."""
        await _post(client, SECRETS, docker_config_secret("regcred"))
        status, _ = await _post_protobuf(client, SERVICE_ACCOUNTS, "pb_POST_serviceaccounts.bin")
        assert status == 201
        resp = await client.patch(
            f"{SERVICE_ACCOUNTS}/builder",
            data=json.dumps({"imagePullSecrets": [{"name": "regcred"}]}),
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        assert resp.status == 200
        assert (await resp.json())["imagePullSecrets"] == [{"name": "regcred"}]
        return client

    async def test_strategic_merge_patch_is_stored(self, builder: Client) -> None:
        doc = await (await builder.get(f"{SERVICE_ACCOUNTS}/builder")).json()
        assert doc["imagePullSecrets"] == [{"name": "regcred"}]

    async def test_a_pod_of_the_account_gets_its_pull_secrets(self, builder: Client) -> None:
        doc = await create_pod(
            builder, pod_manifest("p", "busybox:1.36", serviceAccountName="builder")
        )
        assert doc["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
        assert doc["spec"]["serviceAccountName"] == "builder"
        stored = await (await builder.get(f"{PODS}/p")).json()
        assert stored["spec"]["imagePullSecrets"] == [{"name": "regcred"}]

    async def test_a_pod_with_its_own_pull_secrets_keeps_them(self, builder: Client) -> None:
        doc = await create_pod(
            builder,
            pod_manifest(
                "p",
                "busybox:1.36",
                serviceAccountName="builder",
                imagePullSecrets=[{"name": "mine"}],
            ),
        )
        assert doc["spec"]["imagePullSecrets"] == [{"name": "mine"}]

    async def test_a_pod_of_another_account_gets_none(self, builder: Client) -> None:
        doc = await create_pod(builder, pod_manifest("p", "busybox:1.36"))
        assert "imagePullSecrets" not in doc["spec"]
        assert doc["spec"]["serviceAccountName"] == "default"


class TestPrivateImage:
    """A catalogue image with `auth` pulls only with matching credentials."""

    async def test_without_credentials_it_is_unauthorized(self, api) -> None:
        client = await api(registry=PRIVATE_REGISTRY, sync=NO_REQUEUE)
        await create_pod(client, pod_manifest("p", PRIVATE))

        async def err_image_pull() -> dict[str, Any] | None:
            waiting = (await _container_state(client, "p")).get("waiting", {})
            return waiting if waiting.get("reason") == "ErrImagePull" else None

        waiting = await wait_for(err_image_pull)
        assert "pull access denied" in waiting["message"]
        assert "authorization failed" in waiting["message"]

    async def test_with_the_wrong_password_it_is_unauthorized(self, api) -> None:
        client = await api(registry=PRIVATE_REGISTRY)
        await _post(client, SECRETS, docker_config_secret("regcred", password="wrong"))
        await create_pod(client, pod_manifest("p", PRIVATE, imagePullSecrets=[{"name": "regcred"}]))

        async def failed() -> str | None:
            reason = (await _container_state(client, "p")).get("waiting", {}).get("reason")
            return reason if reason in {"ErrImagePull", "ImagePullBackOff"} else None

        await wait_for(failed)

    async def test_with_the_pods_own_pull_secret_it_runs(self, api) -> None:
        client = await api(registry=PRIVATE_REGISTRY)
        await _post(client, SECRETS, docker_config_secret("regcred"))
        await create_pod(client, pod_manifest("p", PRIVATE, imagePullSecrets=[{"name": "regcred"}]))
        await _wait_running(client, "p")

    async def test_with_the_service_accounts_pull_secret_it_runs(self, api) -> None:
        client = await api(registry=PRIVATE_REGISTRY)
        await _post(client, SECRETS, docker_config_secret("regcred"))
        await _post(client, SERVICE_ACCOUNTS, {"metadata": {"name": "builder"}})
        resp = await client.patch(
            f"{SERVICE_ACCOUNTS}/builder",
            json={"imagePullSecrets": [{"name": "regcred"}]},
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        assert resp.status == 200
        await create_pod(client, pod_manifest("p", PRIVATE, serviceAccountName="builder"))
        await _wait_running(client, "p")

    async def test_credentials_for_another_registry_do_not_match(self, api) -> None:
        client = await api(registry=PRIVATE_REGISTRY, sync=NO_REQUEUE)
        await _post(client, SECRETS, docker_config_secret("regcred", registry="other.example.com"))
        await create_pod(client, pod_manifest("p", PRIVATE, imagePullSecrets=[{"name": "regcred"}]))

        async def err_image_pull() -> bool:
            state = await _container_state(client, "p")
            return state.get("waiting", {}).get("reason") == "ErrImagePull"

        await wait_for(err_image_pull)


@pytest.mark.parametrize(
    ("content", "go_error"),
    [
        (b"{not json", "invalid character 'n' looking for beginning of object key string"),
        (b'{"auths": ', "unexpected end of JSON input"),
        (b"[1]", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    ],
)
async def test_a_docker_config_that_is_not_a_json_object_in_gos_words(
    client: Client, content: bytes, go_error: str
) -> None:
    body = docker_config_secret("broken")
    body["data"] = {".dockerconfigjson": base64.b64encode(content).decode()}
    resp = await client.post(SECRETS, json=body)
    assert resp.status == 422
    (cause,) = (await resp.json())["details"]["causes"]
    assert cause["message"] == f'Invalid value: "<secret contents redacted>": {go_error}'
