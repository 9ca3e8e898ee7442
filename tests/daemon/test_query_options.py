"""Query parameters read as the apiserver reads them: booleans by apimachinery's conversion
(anything but absent, "0" or "false" is true), PodLogOptions decoded and validated."""

from __future__ import annotations

import json

import pytest
from apikit import PODS, Client, PodWatch, assert_status, create_pod, pod_manifest

from kubesim_images.daemon.kube import ApiError, query_flag, query_int


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("0", False),
        ("false", False),
        ("FALSE", False),
        ("1", True),
        ("", True),
        ("true", True),
        ("True", True),
        ("yes", True),
    ],
)
def test_query_flag(value: str | None, expected: bool) -> None:
    query = {} if value is None else {"watch": value}
    assert query_flag(query, "watch") is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", 'strconv.ParseInt: parsing "abc": invalid syntax'),
        ("1.5", 'strconv.ParseInt: parsing "1.5": invalid syntax'),
        ("²", 'strconv.ParseInt: parsing "²": invalid syntax'),
        ("9223372036854775808", 'parsing "9223372036854775808": value out of range'),
    ],
)
def test_query_int_refusals(text: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        query_int({"tailLines": text}, "tailLines")
    assert caught.value.code == 400
    assert message in str(caught.value.status()["message"])


async def test_watch_true_in_any_case_watches(client: Client) -> None:
    async with client.get(PODS, params={"watch": "True", "timeoutSeconds": "5"}) as resp:
        await create_pod(client, pod_manifest("web", "busybox:1.36"))
        line = await resp.content.readline()
    assert json.loads(line)["type"] == "ADDED"


class TestLogOptions:
    async def _running(self, client: Client) -> None:
        async with PodWatch(client, "web") as watch:
            await create_pod(client, pod_manifest("web", "busybox:1.36"))
            await watch.until(lambda p: p["status"]["phase"] == "Running")

    @pytest.mark.parametrize(
        ("params", "code", "message"),
        [
            ({"tailLines": "abc"}, 400, 'strconv.ParseInt: parsing "abc": invalid syntax'),
            (
                {"sinceTime": "yesterday"},
                400,
                'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00"',
            ),
            (
                {"tailLines": "-1"},
                422,
                (
                    'PodLogOptions "web" is invalid: tailLines: Invalid value: -1: must be '
                    "greater than or equal to 0"
                ),
            ),
            ({"limitBytes": "0"}, 422, "limitBytes: Invalid value: 0: must be greater than 0"),
            ({"sinceSeconds": "0"}, 422, "sinceSeconds: Invalid value: 0: must be greater than 0"),
            (
                {"sinceSeconds": "5", "sinceTime": "2026-01-01T00:00:00Z"},
                422,
                ": Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
            ),
        ],
    )
    async def test_refused(
        self, client: Client, params: dict[str, str], code: int, message: str
    ) -> None:
        await self._running(client)
        resp = await client.get(f"{PODS}/web/log", params=params)
        assert resp.status == code
        reason = "BadRequest" if code == 400 else "Invalid"
        assert_status(await resp.json(), code, reason, message_contains=message)

    async def test_valid_options_answer_the_empty_log(self, client: Client) -> None:
        await self._running(client)
        params = {"tailLines": "10", "limitBytes": "100", "sinceSeconds": "60"}
        resp = await client.get(f"{PODS}/web/log", params=params)
        assert resp.status == 200
        assert await resp.read() == b""
