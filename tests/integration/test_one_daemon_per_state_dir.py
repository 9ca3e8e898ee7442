"""One daemon per state directory: a second `serve` on a directory in use refuses to start
(two daemons lose each other's acknowledged writes), the lock dies with its holder on
`kill -9`, and the image verbs that write the content store refuse to run beside a daemon.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HOST, DaemonFactory

pytestmark = pytest.mark.integration
NS = "/api/v1/namespaces/default"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubesim_images", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_second_daemon_on_a_directory_in_use_refuses_and_one_starts_after_kill_9(
    daemon_factory: DaemonFactory,
) -> None:
    first = daemon_factory()
    first.create_pod("web", "nginx:1.27", policy="Never")
    state = str(first.state_dir)
    second = run("serve", "--address", HOST, "--port", "0", "--state-dir", state)
    assert second.returncode != 0
    assert (
        f"error: state directory {state} is in use by another kubesim-images process "
        f"(pid {first.proc.pid}); a second daemon needs its own --state-dir DIR "
        "(`make run STATE_DIR=DIR`)"
    ) in second.stderr
    # The first is untouched: still serving what it had.
    assert first.api("GET", f"{NS}/pods/web")["metadata"]["name"] == "web"

    first.kill()
    third = daemon_factory(state_dir=first.state_dir)
    assert third.api("GET", f"{NS}/pods/web")["metadata"]["name"] == "web"


def test_a_port_in_use_says_how_to_choose_another(tmp_path: Path) -> None:
    """What a newcomer meets when `make run` finds another daemon on 10255."""
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--address", HOST, "--port", str(port), "--state-dir", str(tmp_path))
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot serve on {HOST}:{port}: ")
    assert last.endswith(
        "address already in use; choose another port with --port N (`make run PORT=N`; "
        "0 picks a free one)"
    )


def test_image_verbs_that_write_refuse_beside_a_daemon(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory()
    state = str(daemon.state_dir)
    refused = run("rmi", "--all", "--state-dir", state)
    assert refused.returncode == 1
    assert f"state directory {state} is in use by another kubesim-images process" in (
        refused.stderr
    )
    listed = run("images", "--state-dir", state, "-q")  # reading is allowed beside it
    assert listed.returncode == 0, listed.stderr

    daemon.kill()
    assert run("rmi", "--all", "--state-dir", state).returncode == 0
