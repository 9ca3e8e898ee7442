"""`kubesim-images pull` starts lean: its start-up is part of the time a pull takes (bench/pull.py
compares the whole process with skopeo's), so it loads neither structlog nor rich unless it
must (a log line at the level asked, a progress bar on a terminal), nor the system's CAs for
aiohttp's default TLS contexts, which it never uses: its client verifies with its own."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from ocikit import Registry, Seeded

from kubesim_images.contentstore import ContentStore

pytestmark = pytest.mark.integration

PROBE = """
import json, sys
from kubesim_images import cli
code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [m for m in ("structlog", "rich") if m in sys.modules]}))
"""
# What aiohttp's default contexts hold once the pull command imported it, and one made after.
CA_PROBE = """
import json, ssl, sys
from kubesim_images import cli
code = cli.main(sys.argv[1:])
from aiohttp import connector
print(json.dumps({
    "code": code,
    "aiohttp": [c.cert_store_stats()["x509"]
                for c in (connector._SSL_CONTEXT_VERIFIED, connector._SSL_CONTEXT_UNVERIFIED)],
    "after": ssl.create_default_context().cert_store_stats(),
}))
"""


def _pull(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_pull_loads_no_logging_or_terminal_library(seeded: Seeded, tmp_path: Path) -> None:
    image = f"{seeded.open.host}/demo/big:v1"
    out = _pull("pull", image, "--platform", "linux/amd64", "--state-dir", str(tmp_path))
    assert out == {"code": 0, "loaded": []}


def test_logging_asked_for_still_logs(seeded: Seeded, tmp_path: Path) -> None:
    image = f"{seeded.open.host}/demo/big:v1"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "--log-level", "debug", "pull", image,
         "--platform", "linux/amd64", "--state-dir", str(tmp_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout.splitlines()[-1])["loaded"] == ["structlog", "rich"]
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert any(line["event"] == "image_recording" for line in lines)


def test_aiohttp_is_imported_without_cas_and_the_client_verifies_with_its_own(
    tls_registry: tuple[Registry, Path], tmp_path: Path
) -> None:
    """Over HTTPS, with the test CA: the pull's connections use the client's context (the
    system's CAs and the file's), as aiohttp's defaults hold none."""
    registry, ca = tls_registry
    done = subprocess.run(
        [sys.executable, "-c", CA_PROBE, "pull",
         f"{registry.host}/demo/tiny:v1", "--ca-file", str(ca), "--platform", "linux/amd64",
         "--state-dir", str(tmp_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["code"] == 0, done.stderr
    assert out["aiohttp"] == [0, 0]
    # The variables were put back: a context made now loads the system's CAs.
    assert out["after"] == ssl.create_default_context().cert_store_stats()


def test_a_pull_ends_without_checkpointing_the_store(seeded: Seeded, tmp_path: Path) -> None:
    """Its record is synced into SQLite's log at its commit; closing would only move it into
    the database (two more fsyncs): the process ends with the log left for the next opener."""
    image = f"{seeded.open.host}/demo/big:v1"
    done = subprocess.run(
        [sys.executable, "-m", "kubesim_images", "pull", image, "--platform", "linux/amd64",
         "--state-dir", str(tmp_path), "-o", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    log = tmp_path / "content" / "images.db-wal"
    assert log.stat().st_size > 0
    store = ContentStore(tmp_path / "content")
    assert [i.id for i in store.images()] == [json.loads(done.stdout)["id"]]
    store.close()
    assert not log.exists()  # a closing connection checkpoints it
