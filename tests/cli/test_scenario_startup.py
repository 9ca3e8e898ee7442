"""`scenario run -o json` starts lean: its start-up is part of every run's time (a 1,000-node
run takes about a second), so it loads only what a virtual-time run needs. Not the daemon's or
the real registries' libraries, not the plots', not the content store; not rich unless its
status is drawn (on a terminal), not structlog unless a line is logged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from simkit import image, pod, scenario

APP = "example.com/app:v1"
UNWANTED = ("aiohttp", "prometheus_client", "matplotlib", "rich", "structlog", "sqlite3")
# What the run loaded goes to a file of its own: rich's status draws on stderr.
PROBE = """
import json, sys
from kubesim_images import cli
code = cli.main(sys.argv[2:])
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(%r))
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "loaded": loaded}, f)
""" % (UNWANTED,)  # noqa: UP031 - the probe's own braces stay as they are


def _run(
    tmp_path: Path, *args: str, kubelet: dict[str, Any] | None = None, **env: str
) -> tuple[dict[str, Any], str, str]:
    path, report = tmp_path / "small.json", tmp_path / "loaded.json"
    workload = [{"replicas": 4, "pod": pod("web", APP)}]
    spec = {"registry": {"images": [image(APP, 1)]}, "workload": workload, "kubelet": kubelet or {}}
    document = scenario(spec)
    path.write_text(json.dumps(document), encoding="utf-8")
    child_env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "TTY_COMPATIBLE"}}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            str(report),
            *args,
            "scenario",
            "run",
            str(path),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**child_env, **env},
    )
    probe: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    return probe, done.stdout, done.stderr


def test_a_json_run_loads_none_of_the_other_commands_libraries(tmp_path: Path) -> None:
    probe, out, _ = _run(tmp_path)
    assert probe == {"code": 0, "loaded": []}
    assert json.loads(out)["variants"][0]["summary"]["pods"] == 4


def test_a_terminal_still_gets_richs_status(tmp_path: Path) -> None:
    """FORCE_COLOR makes rich draw as on a terminal: then the status is shown, so rich loads."""
    probe, _, _ = _run(tmp_path, FORCE_COLOR="1")
    assert probe["loaded"] == ["rich"]


def test_a_warning_is_still_written(tmp_path: Path) -> None:
    """A misspelt kubelet field is logged, as the kubelet's lenient decoding does."""
    probe, out, err = _run(tmp_path, kubelet={"serialiseImagePulls": False})
    assert "structlog" in probe["loaded"]
    (line,) = err.splitlines()
    assert json.loads(line)["field"] == "spec.kubelet.serialiseImagePulls"
    assert json.loads(out)["variants"][0]["summary"]["pods"] == 4


def test_lines_below_warning_are_written_when_asked_for(tmp_path: Path) -> None:
    probe, _, err = _run(tmp_path, "--log-level", "debug")
    assert "structlog" in probe["loaded"]
    assert {json.loads(line)["level"] for line in err.splitlines()} & {"debug", "info"}


@pytest.mark.parametrize("output", ["json", "table"])
def test_the_process_ends_with_all_its_output_and_its_code(tmp_path: Path, output: str) -> None:
    """A finished run's process ends without freeing its results: its output is all there."""
    path = tmp_path / "small.json"
    document = scenario(
        {
            "registry": {"images": [image(APP, 1)]},
            "workload": [{"replicas": 4, "pod": pod("web", APP)}],
        }
    )
    path.write_text(json.dumps(document), encoding="utf-8")
    command = [sys.executable, "-m", "kubesim_images", "scenario", "run", str(path), "-o", output]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0
    if output == "json":
        assert done.stdout.endswith("}\n")
        assert json.loads(done.stdout)["variants"][0]["summary"]["podsReady"] == 4
    else:
        assert "pods ready" in done.stdout
        assert "4/4" in done.stdout
    path.write_text("kind: Scenario\n", encoding="utf-8")
    refused = subprocess.run(command, capture_output=True, text=True, check=False)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: {path}: apiVersion")
