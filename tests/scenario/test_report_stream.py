"""The streamed `-o json` output is the whole document's text, byte for byte."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesim_images.scenario import report
from kubesim_images.scenario.model import load_document, load_file
from kubesim_images.scenario.runner import ScenarioResult, run_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "config" / "scenarios").glob("*.yaml"))


def _whole(result: ScenarioResult) -> bytes:
    return orjson.dumps(report.to_json(result), option=orjson.OPT_INDENT_2) + b"\n"


def _streamed(result: ScenarioResult) -> bytes:
    out = io.BytesIO()
    report.write_json(result, out)
    return out.getvalue()


@pytest.mark.parametrize("chunk", [1, 3, 4096])
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_streamed_output_is_the_documents_text(
    path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "_CHUNK", chunk)
    result = run_scenario(load_file(path))
    assert sum(len(v.events) for v in result.variants) > chunk or chunk == 4096
    assert _streamed(result) == _whole(result)


def test_a_variant_without_pods_or_events_streams_empty_lists() -> None:
    scenario = load_document(
        {
            "apiVersion": "kubesim.io/v1alpha1",
            "kind": "Scenario",
            "metadata": {"name": "empty"},
            "spec": {"duration": "1s", "nodes": {"count": 1}, "workload": []},
        }
    )
    result = run_scenario(scenario)
    assert result.variants[0].pods == []
    streamed = _streamed(result)
    assert b'"pods": [],' in streamed
    assert streamed == _whole(result)


@given(
    st.one_of(
        st.integers(0, 10**16),
        st.integers(0, 10**12).map(lambda us: us * 1000 + 500),  # exactly half a microsecond
        st.integers(-(10**12), -1),
    )
)
def test_report_times_are_seconds_rounded_as_round_would(ns: int) -> None:
    assert report._t(ns) == round(ns / 1e9, 6)
