"""Edge cases a real API server refuses: renames by patch, bad names, alias bombs, ordering."""

from __future__ import annotations

from apikit import PODS, SECRETS, SERVICE_ACCOUNTS, assert_status, create_pod, pod_manifest


class TestImmutableIdentity:
    """A patch cannot rename an object or move it to another namespace."""

    async def test_secret_and_service_account_renames_are_refused(self, client):
        await client.post(SECRETS, json={"metadata": {"name": "s"}, "stringData": {"k": "v"}})
        await client.post(SERVICE_ACCOUNTS, json={"metadata": {"name": "sa"}})
        for path, patch in (
            (f"{SECRETS}/s", {"metadata": {"name": "t"}}),
            (f"{SERVICE_ACCOUNTS}/sa", {"metadata": {"namespace": "other"}}),
        ):
            resp = await client.patch(
                path, json=patch, headers={"Content-Type": "application/merge-patch+json"}
            )
            assert_status(await resp.json(), 400, "BadRequest", message_contains="immutable")
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
