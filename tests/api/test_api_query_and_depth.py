"""List options the apiserver cannot decode are 400s with its text, and a body nested past the
JSON decoder's own recursion limit gets the daemon's depth refusal, not Python's words."""

from __future__ import annotations

import pytest
from apikit import PODS, assert_status


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("abc", 'strconv.ParseInt: parsing "abc": invalid syntax'),
        ("1.5", 'strconv.ParseInt: parsing "1.5": invalid syntax'),
        (
            "99999999999999999999",
            'strconv.ParseInt: parsing "99999999999999999999": value out of range',
        ),
    ],
)
@pytest.mark.parametrize("watch", [False, True])
async def test_a_limit_that_is_not_an_int64_is_400(client, limit, message, watch) -> None:
    params = {"limit": limit, **({"watch": "1"} if watch else {})}
    resp = await client.get(PODS, params=params)
    body = await resp.json()
    assert_status(body, 400, "BadRequest")
    assert body["message"] == message


async def test_a_valid_limit_lists(client) -> None:
    resp = await client.get(PODS, params={"limit": "500"})
    assert resp.status == 200


async def test_a_body_past_the_decoders_recursion_limit_is_the_depth_refusal(client) -> None:
    body = '{"a":' * 5000 + "1" + "}" * 5000
    resp = await client.post(PODS, data=body, headers={"Content-Type": "application/json"})
    doc = await resp.json()
    assert_status(doc, 400, "BadRequest")
    assert doc["message"] == "the request body is nested deeper than 100 levels"
    assert "recursion" not in doc["message"]
