"""`kubesim-images fault-proxy` as a process for tests, and a content-store audit.

The proxy runs from the real CLI (as users run it); readiness is its own log line, never a
poll, and every line it logs is kept so tests can count the faults it injected.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from ocikit import HOST, free_port


class FaultProxyProcess:
    def __init__(self, workdir: Path, upstream: str, rules: dict[str, Any], ready: str) -> None:
        """`ready`: the log event that means the proxy is in the state the test wants."""
        self.port = free_port()
        self.host = f"{HOST}:{self.port}"
        faults = workdir / f"faults-{self.port}.yaml"
        faults.write_text(yaml.safe_dump(rules))
        guard = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []
        self.process = subprocess.Popen(
            [
                *guard,
                sys.executable,
                "-m",
                "kubesim_images",
                "fault-proxy",
                "--upstream",
                f"http://{upstream}",
                "--faults",
                str(faults),
                "--listen",
                self.host,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        self.lines: list[dict[str, Any]] = []
        for line in self.process.stderr:  # blocks until the line, or EOF if it died
            self._keep(line)
            if self.lines and self.lines[-1].get("event") == ready:
                break
        else:
            pytest.fail(f"fault-proxy did not reach {ready}: {self.lines}")
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _keep(self, line: str) -> None:
        try:
            self.lines.append(json.loads(line))
        except ValueError:
            self.lines.append({"event": "unparsed", "line": line})

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._keep(line)

    def injected(self, rule: str) -> list[dict[str, Any]]:
        return [x for x in self.lines if x.get("event") == "fault_injected" and x["rule"] == rule]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._drainer.join(timeout=10)  # the pipe reaches EOF once the process is gone
        if self.process.stderr is not None:
            self.process.stderr.close()


def audit_store(root: Path) -> tuple[int, list[str]]:
    """(verified blobs, problems): every blob under `blobs/` must hash to its name."""
    problems = []
    blobs = sorted((root / "blobs" / "sha256").glob("*"))
    for path in blobs:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != path.name:
            problems.append(f"{path}: sha256 {actual}")
    return len(blobs), problems
