"""SelfSubjectAccessReview (`kubectl auth can-i`): every authenticated request is allowed, a
malformed review is the apiserver's 422, and kubectl's protobuf body is read.
SelfSubjectRulesReview (`kubectl auth can-i --list`): AlwaysAllow's rules for the namespace
named, and the apiserver's 400 when none is."""

from __future__ import annotations

from apikit import PROTOBUF, ApiFactory, Client, assert_status, pb_field

from kubesim_images.daemon.access import PATH, REASON, RULES_PATH
from kubesim_images.daemon.protobuf import MAGIC


async def test_a_review_is_allowed(client: Client) -> None:
    spec = {"resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}}
    resp = await client.post(PATH, json={"spec": spec})
    doc = await resp.json()
    assert resp.status == 201, doc
    assert doc["kind"] == "SelfSubjectAccessReview"
    assert doc["apiVersion"] == "authorization.k8s.io/v1"
    assert doc["spec"] == spec
    assert doc["status"] == {"allowed": True, "reason": REASON}


async def test_kubectls_protobuf_review(client: Client) -> None:
    type_meta = pb_field(1, b"authorization.k8s.io/v1") + pb_field(2, b"SelfSubjectAccessReview")
    attributes = pb_field(2, b"delete") + pb_field(5, b"nodes")
    review = pb_field(2, pb_field(1, attributes))
    body = MAGIC + pb_field(1, type_meta) + pb_field(2, review)
    resp = await client.post(PATH, data=body, headers={"Content-Type": PROTOBUF})
    doc = await resp.json()
    assert resp.status == 201, doc
    assert doc["spec"] == {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}
    assert doc["status"]["allowed"] is True


async def test_exactly_one_kind_of_attributes(client: Client) -> None:
    for spec in ({}, {"resourceAttributes": {}, "nonResourceAttributes": {"path": "/x"}}):
        resp = await client.post(PATH, json={"spec": spec})
        assert resp.status == 422
        assert_status(
            await resp.json(),
            422,
            "Invalid",
            message_contains="exactly one of nonResourceAttributes or resourceAttributes",
        )


async def test_the_token_still_guards_it(api: ApiFactory) -> None:
    client = await api(token="s3cret")
    spec = {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}
    resp = await client.post(PATH, json={"spec": spec})
    assert resp.status == 401
    resp = await client.post(PATH, json={"spec": spec}, headers={"Authorization": "Bearer s3cret"})
    assert resp.status == 201


ALL_RULES = {
    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
    "incomplete": False,
}


async def test_a_rules_review_lists_everything(client: Client) -> None:
    resp = await client.post(RULES_PATH, json={"spec": {"namespace": "default"}})
    doc = await resp.json()
    assert resp.status == 201, doc
    assert doc == {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {},
        "status": ALL_RULES,
    }


async def test_kubectls_protobuf_rules_review(client: Client) -> None:
    type_meta = pb_field(1, b"authorization.k8s.io/v1") + pb_field(2, b"SelfSubjectRulesReview")
    review = pb_field(2, pb_field(1, b"kube-system"))
    body = MAGIC + pb_field(1, type_meta) + pb_field(2, review)
    resp = await client.post(RULES_PATH, data=body, headers={"Content-Type": PROTOBUF})
    doc = await resp.json()
    assert resp.status == 201, doc
    assert doc["status"] == ALL_RULES


async def test_a_rules_review_must_name_a_namespace(client: Client) -> None:
    for body in ({}, {"spec": {}}, {"spec": {"namespace": ""}}):
        resp = await client.post(RULES_PATH, json=body)
        assert_status(await resp.json(), 400, "BadRequest")
        assert (await resp.json())["message"] == "no namespace on request"
    resp = await client.post(RULES_PATH, json={"spec": {"namespace": 7}})
    assert_status(await resp.json(), 400, "BadRequest", message_contains="cannot unmarshal number")
