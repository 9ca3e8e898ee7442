"""Label selectors parsed as apimachinery's labels.Parse: a malformed one is a 400 with its
text (never a list that ignored part of it), and every operator it knows selects."""

from __future__ import annotations

import pytest
from apikit import PODS, assert_status, create_pod, pod_manifest

PAUSE = "registry.k8s.io/pause:3.10"


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("==x", "found '==', expected: !, identifier, or 'end of string'"),
        ("!!a", "unable to parse requirement: found '!', expected: identifier"),
        ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a,", "found '', expected: identifier after ','"),
        ("a=b=c", "found '=', expected: ',' or 'end of string'"),
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a in b", "unable to parse requirement: found 'b' expected: '('"),
        (
            "a>x",
            (
                'unable to parse requirement: values[0]: Invalid value: "x": '
                "for 'Gt', 'Lt' operators, the value must be an integer"
            ),
        ),
    ],
)
@pytest.mark.parametrize("path", [PODS, "/api/v1/pods", "/api/v1/namespaces/default/secrets"])
async def test_malformed_selectors_are_400_with_apimachinery_texts(
    client, path, selector, message
) -> None:
    resp = await client.get(path, params={"labelSelector": selector})
    body = await resp.json()
    assert_status(body, 400, "BadRequest")
    assert body["message"] == message


async def test_an_invalid_key_or_value_is_refused(client) -> None:
    body = await (await client.get(PODS, params={"labelSelector": "a@b=c"})).json()
    assert_status(body, 400, "BadRequest")
    assert body["message"].startswith('unable to parse requirement: <nil>: Invalid value: "a@b"')
    body = await (await client.get(PODS, params={"labelSelector": "a=b@c"})).json()
    assert body["message"].startswith(
        'unable to parse requirement: values[0][a]: Invalid value: "b@c": a valid label must'
    )


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("tier", ["one", "two"]),
        ("!tier", ["none"]),
        ("rank>1", ["two"]),
        ("rank<2", ["one"]),
        ("tier in (web, db),rank notin (2)", ["one"]),
        ("tier==db", ["two"]),
        ("tier!=db", ["none", "one"]),
        ("x in (in)", []),
    ],
)
async def test_every_operator_selects(client, selector, names) -> None:
    await create_pod(client, pod_manifest("one", PAUSE, labels={"tier": "web", "rank": "1"}))
    await create_pod(client, pod_manifest("two", PAUSE, labels={"tier": "db", "rank": "2"}))
    await create_pod(client, pod_manifest("none", PAUSE))
    listed = await (await client.get(PODS, params={"labelSelector": selector})).json()
    assert sorted(p["metadata"]["name"] for p in listed["items"]) == names
