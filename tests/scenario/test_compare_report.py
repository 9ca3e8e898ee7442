"""`--compare`'s report: each real-time variant beside its virtual run, in JSON, table and plots.

A simulated registry is its own model, so these run the model on the wall clock (a workload of
zero-latency, zero-size pulls ends at once) and beside it in virtual time; a real registry's
model is covered with the registry itself (tests/oci/test_compare.py). Nothing here reads a
duration.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import orjson
import pytest
import yaml
from simkit import image, pod, scenario

from kubesim_images.cli import main
from kubesim_images.scenario import plots, report
from kubesim_images.scenario.model import load_document
from kubesim_images.scenario.runner import run_scenario

APP = "example.com/app:v1"


def _doc() -> dict[str, object]:
    return scenario(
        {
            "nodes": {"count": 2},
            "registry": {"latency": "0s", "images": [image(APP, 0)]},
            "workload": [{"replicas": 3, "pod": pod("web", APP)}],
            "variants": [{"name": "a"}, {"name": "b", "kubelet": {"serializeImagePulls": False}}],
        }
    )


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(_doc()))
    return path


@pytest.mark.parametrize("chunk", [1, 4096])
def test_the_streamed_document_carries_the_virtual_runs_and_the_comparison(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "_CHUNK", chunk)
    result = run_scenario(load_document(_doc()), real_time=True, compare=True)
    out = io.BytesIO()
    report.write_json(result, out)
    whole = orjson.dumps(report.to_json(result), option=orjson.OPT_INDENT_2) + b"\n"
    assert out.getvalue() == whole
    document = json.loads(whole)
    assert [v["name"] for v in document["variants"]] == ["a", "b"]
    assert [v["name"] for v in document["virtual"]["variants"]] == ["a", "b"]
    # A simulated registry is its own model: no catalogue had to be resolved.
    assert all("model" not in v for v in document["virtual"]["variants"])
    for real, virtual, compared in zip(
        document["variants"],
        document["virtual"]["variants"],
        document["comparison"],
        strict=True,
    ):
        assert compared["name"] == real["name"]
        assert compared["podsReady"] == {"real": 3, "virtual": 3}
        assert compared["pulls"] == {"real": 2, "virtual": 2}  # one per node, then present
        for key in ("p50", "p90", "p99", "max"):
            cell = compared["imagesReady"][key]
            assert cell["real"] == real["summary"]["imagesReady"][key]
            assert cell["virtual"] == virtual["summary"]["imagesReady"][key] == 0.0
            assert cell["difference"] == pytest.approx(cell["real"], abs=1e-6)
        # Virtual time: the same pods, on the same nodes, at the same instants as ever.
        assert [(p["name"], p["node"]) for p in virtual["pods"]] == [
            (p["name"], p["node"]) for p in real["pods"]
        ]
        assert virtual["summary"]["simulatedSeconds"] == 0.0


def test_without_compare_the_document_is_section_8s() -> None:
    result = run_scenario(load_document(_doc()), real_time=True)
    assert set(report.to_json(result)) == {"scenario", "variants"}


def test_the_table_puts_each_model_beside_its_variant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scenario", "run", str(_file(tmp_path)), "--real-time", "--compare"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "(real)" in line)
    columns = [c.strip() for c in header.split("┃") if c.strip()]
    assert columns == ["a (real)", "a (virtual)", "b (real)", "b (virtual)"]
    assert "pods (b (virtual))" in out


def test_the_plots_overlay_each_model_dashed_in_its_variants_colour() -> None:
    result = run_scenario(load_document(_doc()), real_time=True, compare=True)
    drawn = [(label, style) for label, _run, style in plots.series(result)]
    assert drawn == [
        ("a (real)", {"color": "C0"}),
        ("a (virtual)", {"color": "C0", "linestyle": "--"}),
        ("b (real)", {"color": "C1"}),
        ("b (virtual)", {"color": "C1", "linestyle": "--"}),
    ]


def test_compare_needs_real_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "run", str(_file(tmp_path)), "--compare"]) == 2
    assert "--compare puts a virtual run beside a real-time one: add --real-time" in (
        capsys.readouterr().err
    )
    with pytest.raises(ValueError, match="use --real-time"):
        run_scenario(load_document(_doc()), compare=True)
