"""Edge cases a real API server refuses: renames by patch, bad names, alias bombs, ordering."""

from __future__ import annotations

import threading

import pytest
import yaml
from apikit import PODS, SECRETS, SERVICE_ACCOUNTS, assert_status, create_pod, pod_manifest

from kubesim_images.daemon import bodies, fieldvalidation


class TestImmutableIdentity:
    """A patch cannot rename an object or move it to another namespace."""

    async def test_secret_and_service_account_renames_are_refused(self, client):
        await client.post(SECRETS, json={"metadata": {"name": "s"}, "stringData": {"k": "v"}})
        await client.post(SERVICE_ACCOUNTS, json={"metadata": {"name": "sa"}})
        for path, patch, code, reason, message in (
            (
                f"{SECRETS}/s",
                {"metadata": {"name": "t"}},
                400,
                "BadRequest",
                "the name of the object (t) does not match the name on the URL (s)",
            ),
            (
                f"{SERVICE_ACCOUNTS}/sa",
                {"metadata": {"namespace": "other"}},
                400,
                "BadRequest",
                (
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                ),
            ),
            (
                f"{SECRETS}/s",
                {"metadata": {"uid": "x"}},
                409,
                "Conflict",
                (
                    'Operation cannot be fulfilled on secrets "s": Precondition failed: UID in '
                    "precondition: x, UID in object meta: "
                ),
            ),
        ):
            resp = await client.patch(
                path, json=patch, headers={"Content-Type": "application/merge-patch+json"}
            )
            body = await resp.json()
            assert_status(body, code, reason)
            assert body["message"].startswith(message), body["message"]
        assert (await client.get(f"{SECRETS}/s")).status == 200
        assert (await client.get(f"{SECRETS}/t")).status == 404


class TestValidation:
    async def test_namespace_names_are_rfc1123_labels(self, client):
        resp = await client.post("/api/v1/namespaces", json={"metadata": {"name": "Bad Name"}})
        assert_status(await resp.json(), 422, "Invalid", message_contains="RFC 1123 label")
        resp = await client.post("/api/v1/namespaces", json={"metadata": {"name": "team-a"}})
        assert resp.status == 201

    async def test_secret_type_must_be_a_string(self, client):
        resp = await client.post(SECRETS, json={"metadata": {"name": "s"}, "type": 5})
        assert_status(await resp.json(), 422, "Invalid")

    async def test_yaml_alias_bomb_is_refused_quickly(self, client):
        lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
        for i in range(8):
            prev, cur = chr(97 + i), chr(98 + i)
            lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
        resp = await client.post(
            PODS, data="\n".join(lines).encode(), headers={"Content-Type": "application/yaml"}
        )
        assert_status(await resp.json(), 413, "RequestEntityTooLarge")


class TestYamlOffTheLoop:
    """PyYAML is pure Python: a 3 MiB YAML body took ~10 s to parse on the event loop, which
    froze every other request (found by schemathesis, whose Pod bodies made the daemon crawl)."""

    async def test_yaml_bodies_and_apply_patches_are_parsed_off_the_event_loop(
        self, client, monkeypatch: pytest.MonkeyPatch
    ):
        threads: list[str] = []

        def recording(parse):
            def wrapper(raw):
                threads.append(threading.current_thread().name)
                return parse(raw)

            return wrapper

        monkeypatch.setattr(bodies, "_load_yaml", recording(bodies._load_yaml))
        monkeypatch.setattr(
            fieldvalidation, "_yaml_duplicates", recording(fieldvalidation._yaml_duplicates)
        )
        body = yaml.safe_dump(pod_manifest("y", "busybox:1.36")).encode()
        resp = await client.post(PODS, data=body, headers={"Content-Type": "application/yaml"})
        assert resp.status == 201, await resp.text()
        await client.post(SECRETS, json={"metadata": {"name": "s"}, "stringData": {"k": "v"}})
        patch = b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  labels: {a: b}\n"
        resp = await client.patch(
            f"{SECRETS}/s?fieldManager=t",
            data=patch,
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        assert resp.status == 200, await resp.text()
        assert len(threads) >= 4  # each body: decoded, and checked for duplicate keys
        assert threading.main_thread().name not in threads


class TestOrdering:
    async def test_pods_are_listed_by_namespace_then_name(self, client):
        for name in ("zeta", "alpha", "mid"):
            await create_pod(client, pod_manifest(name, "busybox:1.36"))
        names = [p["metadata"]["name"] for p in (await (await client.get(PODS)).json())["items"]]
        assert names == ["alpha", "mid", "zeta"]

    async def test_generate_name_is_kept(self, client):
        body = pod_manifest("ignored", "busybox:1.36")
        body["metadata"] = {"generateName": "web-"}
        doc = await create_pod(client, body)
        assert doc["metadata"]["name"].startswith("web-")
        assert doc["metadata"]["generateName"] == "web-"
