"""The fault proxy's rules file: what it accepts, how it refuses, and which request a rule
faults (first `times` matches, `probability` from the file's seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubesim_images.cli import main
from kubesim_images.errors import ConfigError
from kubesim_images.faultproxy.rules import Chooser, parse_rules


def _choose(doc: dict[str, Any], requests: list[tuple[str, str]]) -> list[str | None]:
    chooser = Chooser(parse_rules(doc, source="faults.yaml"))
    return [
        rule.name if (rule := chooser.choose(method, path)) is not None else None
        for method, path in requests
    ]


def test_times_counts_injections_per_rule_and_method_filters() -> None:
    doc = {
        "faults": [
            {"name": "m", "path": "/manifests/", "method": "get", "fault": "status", "times": 2},
            {"name": "b", "path": "/blobs/", "fault": "reset", "after": "1Ki"},
        ]
    }
    requests = [("HEAD", "/v2/a/manifests/v1")] + [("GET", "/v2/a/manifests/v1")] * 3
    requests += [("GET", "/v2/a/blobs/sha256:ab")] * 2
    assert _choose(doc, requests) == [None, "m", "m", None, "b", "b"]


def test_probability_is_reproducible_from_the_seed() -> None:
    doc = {"seed": 7, "faults": [{"path": "x", "fault": "status", "probability": 0.5}]}
    first = _choose(doc, [("GET", "/x")] * 200)
    assert first == _choose(doc, [("GET", "/x")] * 200)
    hits = sum(1 for name in first if name is not None)
    assert 60 < hits < 140  # half of 200, well inside the binomial spread
    assert set(first) == {None, "status-0"}


def test_refuse_without_a_path_is_a_start_state_not_a_request_match() -> None:
    doc = {"faults": [{"fault": "refuse", "duration": "2s"}]}
    rules = parse_rules(doc, source="faults.yaml")
    assert rules.rules[0].at_start
    assert rules.rules[0].duration == 2.0
    assert _choose(doc, [("GET", "/v2/")]) == [None]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"faults": [{"fault": "explode"}]}, "faults[0].fault: must be one of status, throttle"),
        ({"faults": [{"fault": "slow"}]}, "faults[0].rate: a slow fault needs a rate"),
        ({"faults": [{"fault": "status", "path": "("}]}, "faults[0].path: not a regular"),
        ({"faults": [{"fault": "status", "status": 200}]}, "faults[0].status: must be an integer >= 400"),
        ({"faults": [{"fault": "status", "status": 600}]}, "faults[0].status: must be a 4xx or 5xx"),
        ({"faults": [{"fault": "status", "probability": 2}]}, "faults[0].probability: must be a number"),
        ({"faults": [{"fault": "reset", "typo": 1}]}, "faults[0].typo: unknown field"),
        ({"faults": [{"fault": "status", "method": "GET /"}]}, "faults[0].method: must be an HTTP"),
        ({"rules": []}, "rules: unknown field"),
    ],
)  # fmt: skip
def test_refused_with_the_field_and_why(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rules(doc, source="faults.yaml")
    assert str(caught.value).startswith(f"faults.yaml: {message}")


def test_cli_refuses_a_bad_rules_file_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("faults:\n  - {fault: slow}\n")
    argv = ["fault-proxy", "--upstream", "http://127.0.0.1:5000", "--faults", str(faults)]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: {faults}: faults[0].rate: a slow fault needs a rate (bytes per second)\n"
    )
    assert main([*argv[:2], "127.0.0.1:5000", *argv[3:]]) == 2
    assert "must be an http:// or https:// URL" in capsys.readouterr().err
    assert main([*argv, "--listen", "nohost"]) == 2
    assert capsys.readouterr().err == "error: --listen nohost: must be HOST:PORT\n"
