"""SelfSubjectReview (`kubectl auth whoami`): the anonymous user without a token, the token's
holder with one; kubectl's protobuf body is read, and the group is discovered."""

from __future__ import annotations

from apikit import PROTOBUF, ApiFactory, Client, assert_status, pb_field

from kubesim_images.daemon.protobuf import MAGIC
from kubesim_images.daemon.whoami import PATH


async def test_without_a_token_the_caller_is_anonymous(client: Client) -> None:
    resp = await client.post(PATH, json={"apiVersion": "authentication.k8s.io/v1"})
    doc = await resp.json()
    assert resp.status == 201, doc
    assert doc == {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {
            "userInfo": {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
        },
    }


async def test_the_tokens_holder_is_authenticated(api: ApiFactory) -> None:
    client = await api(token="s3cret")
    assert (await client.post(PATH, json={})).status == 401
    headers = {"Authorization": "Bearer s3cret"}
    doc = await (await client.post(PATH, json={}, headers=headers)).json()
    assert doc["status"]["userInfo"] == {
        "username": "kubesim-images",
        "groups": ["system:authenticated"],
    }


async def test_kubectls_protobuf_review(client: Client) -> None:
    type_meta = pb_field(1, b"authentication.k8s.io/v1") + pb_field(2, b"SelfSubjectReview")
    body = MAGIC + pb_field(1, type_meta) + pb_field(2, pb_field(1, b""))
    resp = await client.post(PATH, data=body, headers={"Content-Type": PROTOBUF})
    doc = await resp.json()
    assert resp.status == 201, doc
    assert doc["status"]["userInfo"]["username"] == "system:anonymous"


async def test_another_kind_is_refused(client: Client) -> None:
    resp = await client.post(PATH, json={"kind": "TokenReview"})
    assert_status(await resp.json(), 400, "BadRequest")


async def test_discovery_lists_it(client: Client) -> None:
    groups = await (await client.get("/apis")).json()
    assert "authentication.k8s.io" in [g["name"] for g in groups["groups"]]
    doc = await (await client.get("/apis/authentication.k8s.io/v1")).json()
    assert [(r["name"], r["kind"], r["verbs"]) for r in doc["resources"]] == [
        ("selfsubjectreviews", "SelfSubjectReview", ["create"])
    ]
