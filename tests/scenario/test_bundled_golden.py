"""The bundled scenarios' JSON, against golden files, and against main before integer time.

`golden/<name>.json.gz` is today's output (`wallSeconds` dropped): any change to it must be
explained and the file regenerated (`python tests/scenario/test_bundled_golden.py`).
`golden/<name>.main.json.gz` is the output of main before virtual time became integer
nanoseconds (commit 7ebad9c); the second group of tests states how today's output differs from
it, each difference explained by one of the fixes:
- same-instant events now run in the order they were scheduled (the tie rule), so events that
  share a timestamp may be listed in another order and, where such ties decided who got a pull
  slot or a rate-limit token first, which pod won changes;
- containerd's `rpc error: code = Unknown desc = ` prefix is stripped, as the 1.32 CRI client does;
- percentiles rank never-ready pods last instead of dropping them.
Image GC came later: its additions (per-variant `nodes`, the summary's GC fields) are set aside
before comparing with main, which had neither.
"""

from __future__ import annotations

import collections
import gzip
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from kubesim_images.scenario.model import load_file
from kubesim_images.scenario.report import to_json
from kubesim_images.scenario.runner import run_scenario

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
SCENARIOS = sorted(p.stem for p in (ROOT / "config" / "scenarios").glob("*.yaml"))
UNKNOWN = "rpc error: code = Unknown desc = "


def current(name: str) -> dict[str, Any]:
    doc = to_json(run_scenario(load_file(ROOT / "config" / "scenarios" / f"{name}.yaml")))
    for variant in doc["variants"]:
        del variant["summary"]["wallSeconds"]
    # Through JSON, so tuples and floats compare as the files hold them.
    return json.loads(json.dumps(doc))


def golden(name: str, suffix: str = "") -> dict[str, Any]:
    with gzip.open(GOLDEN / f"{name}{suffix}.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


def _without_unknown_prefix(doc: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(doc).replace(UNKNOWN, "")
    return json.loads(text)


def _events(variant: dict[str, Any]) -> collections.Counter[str]:
    return collections.Counter(json.dumps(e, sort_keys=True) for e in variant["events"])


def _ready_durations(variant: dict[str, Any]) -> list[float]:
    return sorted(
        round(p["imagesReadyAt"] - p["createdAt"], 6)
        for p in variant["pods"]
        if p["imagesReadyAt"] is not None
    )


@pytest.mark.parametrize("name", SCENARIOS)
def test_output_matches_its_golden_file(name):
    assert current(name) == golden(name)


GC_SUMMARY = ("gcRuns", "imagesGarbageCollected", "bytesFreed", "rePulls")


def _without_gc(doc: dict[str, Any]) -> dict[str, Any]:
    for variant in doc["variants"]:
        del variant["nodes"]
        for key in GC_SUMMARY:
            del variant["summary"][key]
    return doc


def _variants(name):
    before = _without_unknown_prefix(golden(name, ".main"))
    after = _without_gc(golden(name))
    assert [v["name"] for v in before["variants"]] == [v["name"] for v in after["variants"]]
    return dict(
        zip(
            (v["name"] for v in after["variants"]),
            zip(before["variants"], after["variants"], strict=True),
            strict=True,
        )
    )


@pytest.mark.parametrize(
    ("name", "variant"),
    [
        ("serial-vs-parallel", "serial"),
        ("serial-vs-parallel", "parallel-3"),
        ("serial-vs-parallel", "unlimited"),
        ("docker-hub-rate-limit", "if-not-present"),
    ],
)
def test_unchanged_but_for_the_order_of_same_instant_events(name, variant):
    before, after = _variants(name)[variant]
    assert after["summary"] == before["summary"]
    assert after["pods"] == before["pods"]
    assert _events(after) == _events(before)
    assert [e["t"] for e in after["events"]] == [e["t"] for e in before["events"]]


def test_rate_limited_rollout_hands_the_same_tokens_to_other_pods():
    # 429s and pull slots shared out at one instant now go in scheduling order: other pods win,
    # but the same number win, at the same times, with the same events.
    before, after = _variants("docker-hub-rate-limit")["always"]
    assert _ready_durations(after) == _ready_durations(before)
    moved = {"imagesReady"}
    assert {k: v for k, v in after["summary"].items() if k not in moved} == {
        k: v for k, v in before["summary"].items() if k not in moved
    }
    count = collections.Counter
    assert count(e["reason"] for e in after["events"]) == count(
        e["reason"] for e in before["events"]
    )
    # 100 of 160 pods ready: p50 is now the 80th of 160 (main: the 50th of the 100 ready);
    # p90, p99 and max fall on stranded pods.
    assert before["summary"]["imagesReady"] == {
        "p50": 1.742873,
        "p90": 2.042873,
        "p99": 2.042873,
        "max": 2.042873,
    }
    assert after["summary"]["imagesReady"] == {
        "p50": 2.042873,
        "p90": None,
        "p99": None,
        "max": None,
    }


def test_flaky_registry_follows_the_tie_rule():
    # Faults are judged in the order pulls reach the registry; with same-instant round trips
    # now completing first-scheduled-first, the early failures fall on other pods, and two
    # fewer syncs land in back-off.
    before, after = _variants("flaky-registry")["default"]
    assert (before["summary"]["backoffs"], after["summary"]["backoffs"]) == (4, 2)
    assert (before["summary"]["imagesReady"]["p50"], after["summary"]["imagesReady"]["p50"]) == (
        34.685808,
        21.252176,
    )
    same = ("pods", "podsReady", "pulls", "failedPulls", "bytesPulled")
    assert {k: after["summary"][k] for k in same} == {k: before["summary"][k] for k in same}
    assert not any(UNKNOWN in e["message"] for e in after["events"])


def write_golden(path: Path, doc: dict[str, Any]) -> None:
    data = (json.dumps(doc, indent=0, sort_keys=True) + "\n").encode()
    with gzip.GzipFile(path, "wb", mtime=0) as f:  # mtime 0: the same bytes every time
        f.write(data)


def _regenerate() -> None:
    for name in SCENARIOS:
        write_golden(GOLDEN / f"{name}.json.gz", current(name))


if __name__ == "__main__":
    sys.exit(_regenerate())
