"""Issue 7 against the daemon as a process: acknowledged writes survive concurrency and restarts,
connections cannot pin it, unsafe starts are refused or warned about, malformed requests log one
line.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    HOST,
    MISSING_IMAGE,
    DaemonFactory,
    RunningDaemon,
    fast_config,
    http,
    poll,
)

pytestmark = pytest.mark.integration
PODS = "/api/v1/namespaces/default/pods"
MERGE = "application/merge-patch+json"


class History:
    """What the daemon acknowledged, and what it must therefore hold."""

    def __init__(self) -> None:
        self.created: dict[str, str] = {}  # uid -> name
        self.deleted: set[str] = set()
        self.labels: dict[str, tuple[int, dict[str, str]]] = {}  # uid -> (rv, labels)

    def saw(self, doc: dict[str, Any], *, deleted: bool = False) -> None:
        meta = doc["metadata"]
        uid, rv = meta["uid"], int(meta["resourceVersion"])
        if deleted:
            self.deleted.add(uid)
            return
        self.created.setdefault(uid, meta["name"])
        if rv >= self.labels.get(uid, (0, {}))[0]:
            self.labels[uid] = (rv, meta.get("labels") or {})

    def expected(self) -> dict[str, tuple[str, dict[str, str]]]:
        """name -> (uid, labels) of every acknowledged create not acknowledged deleted."""
        out: dict[str, tuple[str, dict[str, str]]] = {}
        for uid, name in self.created.items():
            if uid in self.deleted:
                continue
            assert name not in out, f"two live pods acknowledged for {name}: {uid}, {out[name]}"
            out[name] = (uid, self.labels[uid][1])
        return out


def _live(daemon: RunningDaemon) -> dict[str, tuple[str, dict[str, str]]]:
    items = daemon.api("GET", PODS)["items"]
    return {
        p["metadata"]["name"]: (p["metadata"]["uid"], p["metadata"].get("labels") or {})
        for p in items
    }


def _churn(daemon: RunningDaemon, rounds: int, clients: int) -> History:
    """Rounds of a DELETE, a POST and a PATCH of one name on three connections; `clients`
    threads run rounds side by side over five names.

    A round's three requests are sent while the daemon is stopped (SIGSTOP), so that they are
    all waiting when it continues and its event loop takes them up in the same turn: the
    interleaving that lost acknowledged pods, made likely instead of left to chance.
    """
    history = History()
    names = [f"p{i}" for i in range(5)]
    batch = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conns = [HTTPConnection(HOST, daemon.port, timeout=30) for _ in range(3)]
        try:
            for i in range(seed, rounds, clients):
                name = rng.choice(names)
                image = MISSING_IMAGE if i % 2 else "nginx:1.27"  # half of them in back-off
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "labels": {"step": str(i)}},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                }
                patch = {"metadata": {"labels": {"step": str(i), "patched": "true"}}}
                requests = [
                    ("DELETE", f"{PODS}/{name}", None, "application/json"),
                    ("POST", PODS, pod, "application/json"),
                    ("PATCH", f"{PODS}/{name}", patch, MERGE),
                ]
                order = rng.sample(range(3), 3)
                with batch:
                    daemon.proc.send_signal(signal.SIGSTOP)
                    try:
                        for k in order:
                            method, path, body, ctype = requests[k]
                            data = json.dumps(body).encode() if body is not None else None
                            headers = {"Content-Type": ctype}
                            conns[k].request(method, path, body=data, headers=headers)
                    finally:
                        daemon.proc.send_signal(signal.SIGCONT)
                for k in order:
                    response = conns[k].getresponse()
                    status, doc = response.status, json.loads(response.read())
                    method = requests[k][0]
                    assert status in {200, 201, 404, 409}, (method, status, doc)
                    if status in {200, 201}:
                        history.saw(doc, deleted=method == "DELETE")
        finally:
            for conn in conns:
                conn.close()

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    return history


@pytest.mark.parametrize("stop", ["sigterm", "kill-9"])
def test_interleaved_writes_survive_a_restart_as_acknowledged(
    daemon_factory: DaemonFactory, stop: str
) -> None:
    """Finding 2: 87 of 100 acknowledged pods were lost after a graceful restart."""
    daemon = daemon_factory()
    history = _churn(daemon, rounds=100, clients=10)
    expected = history.expected()
    assert len(history.created) >= 20  # the plan really created and deleted many pods
    assert _live(daemon) == expected
    if stop == "sigterm":
        assert daemon.terminate() == 0
    else:
        daemon.kill()
    with sqlite3.connect(daemon.state_dir / "state.db") as db:
        object_uids = {
            u
            for (u,) in db.execute(
                "SELECT json_extract(doc, '$.metadata.uid') FROM objects WHERE kind = 'Pod'"
            )
        }
        status_uids = {u for (u,) in db.execute("SELECT uid FROM pod_status")}
    assert object_uids == {uid for uid, _ in expected.values()}
    assert status_uids == object_uids  # no orphan status rows
    restarted = daemon_factory(state_dir=daemon.state_dir)
    assert _live(restarted) == expected


# -- connection hygiene (findings 3 and 9) -----------------------------------------------------
@pytest.fixture
def hygienic(daemon_factory: DaemonFactory) -> RunningDaemon:
    """A daemon with short connection limits, so the tests wait on them briefly."""
    return daemon_factory(
        fast_config(api={"headerTimeout": "1s", "keepAliveTimeout": "30s", "maxConnections": 20})
    )


def _connect(daemon: RunningDaemon) -> socket.socket:
    return socket.create_connection((HOST, daemon.port), timeout=10)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:  # a timeout is a failure: the daemon kept it open
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_connection_that_stops_mid_header_is_closed(hygienic: RunningDaemon) -> None:
    with _connect(hygienic) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        answer = _read_all(sock)  # returns when the daemon closes the connection
    assert answer == b""  # closed without an answer, as Go's ReadHeaderTimeout does
    poll(
        lambda: any(e.get("event") == "header_timeout" for e in hygienic.log_events()),
        timeout=10,
        what="a header_timeout log line",
    )
    _assert_one_line_logs(hygienic)


def test_a_tls_connection_that_never_handshakes_is_closed(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(fast_config(api={"headerTimeout": "1s"}), tls=True)
    with _connect(daemon) as sock:
        assert _read_all(sock) == b""  # closed: no ClientHello within the header deadline


def _held_connection(daemon: RunningDaemon) -> socket.socket:
    """A keep-alive connection that has had one answer: the daemon has accepted it."""
    sock = _connect(daemon)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while not answer.endswith(b"ok"):
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    return sock


def test_connections_past_the_cap_get_a_clear_answer(hygienic: RunningDaemon) -> None:
    held = [_held_connection(hygienic) for _ in range(20)]
    try:
        with _connect(hygienic) as extra:
            answer = _read_all(extra)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body["kind"] == "Status"
        assert body["reason"] == "ServiceUnavailable"
        assert "connections" in body["message"]
    finally:
        for sock in held:
            sock.close()
    # once they are gone, /healthz answers again
    poll(lambda: http("GET", hygienic.base_url + "/healthz")[0] == 200, timeout=10, what="healthz")


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response's head and body, without waiting for the connection to close."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def test_an_oversized_content_length_is_refused_at_once(daemon: RunningDaemon) -> None:
    with _connect(daemon) as sock:
        sock.sendall(
            f"POST {PODS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 99999999999\r\n\r\n{".encode()
        )
        head, body = _read_response(sock)  # before the body it announced: no wait for it
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["reason"] == "RequestEntityTooLarge"


def test_a_body_that_stops_coming_is_answered_408(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(fast_config(api={"bodyTimeout": "1s"}))
    with _connect(daemon) as sock:
        sock.sendall(
            f"POST {PODS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            'Content-Length: 100\r\n\r\n{"metadata":'.encode()
        )
        head, body = _read_response(sock)
    assert head.startswith(b"HTTP/1.1 408"), head
    assert json.loads(body)["reason"] == "Timeout"
    _assert_one_line_logs(daemon)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
        b"POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
        b"\x16\x03\x01garbage\r\n\r\n",
    ],
    ids=["oversized-header", "bad-content-length", "not-http"],
)
def test_malformed_requests_log_one_line_without_a_traceback(
    daemon: RunningDaemon, request_bytes: bytes
) -> None:
    with _connect(daemon) as sock:
        sock.sendall(request_bytes)
        answer = _read_all(sock)
    assert answer[:9] in {b"HTTP/1.0 ", b"HTTP/1.1 "}, answer[:200]
    assert answer[9:10] == b"4", answer[:200]
    poll(
        lambda: any(e.get("event") == "bad_request" for e in daemon.log_events()),
        timeout=10,
        what="a bad_request log line",
    )
    _assert_one_line_logs(daemon)


def test_a_client_that_disconnects_mid_body_logs_no_traceback(daemon: RunningDaemon) -> None:
    with _connect(daemon) as sock:
        sock.sendall(
            f"POST {PODS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            'Content-Length: 1000\r\n\r\n{"metadata":'.encode()
        )
    poll(
        lambda: any(
            e.get("event") in {"client_disconnected", "bad_request"} for e in daemon.log_events()
        ),
        timeout=10,
        what="a log line for the broken request",
    )
    assert http("GET", daemon.base_url + "/healthz")[0] == 200
    _assert_one_line_logs(daemon)


def _assert_one_line_logs(daemon: RunningDaemon) -> None:
    for line in daemon.log().splitlines():
        assert line.startswith("{"), f"a log line that is not JSON: {line[:200]}"
        event = json.loads(line)
        assert "Traceback" not in line, line[:400]
        assert event.get("level") != "error", line[:400]


# -- safe starts (finding 7) -------------------------------------------------------------------
def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(fast_config()), encoding="utf-8")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubesim_images",
            "serve",
            "--port",
            "0",
            "--config",
            str(config),
            "--state-dir",
            str(tmp_path / "state"),
            *args,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_a_network_address_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    proc = _serve(tmp_path, "--address", "0.0.0.0")  # noqa: S104 - the refusal is the test
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out.decode()
    assert b"--token-file" in out
    assert b"--insecure-bind" in out


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=15)


def _warnings_until_serving(proc: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        event = json.loads(line)
        seen.append(event)
        if event.get("event") == "serving":
            return seen
    pytest.fail(f"no serving line; saw {seen}")


def test_insecure_bind_starts_with_a_warning(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    proc = _serve(tmp_path, "--address", "0.0.0.0", "--insecure-bind")  # noqa: S104
    started.append(proc)
    events = _warnings_until_serving(proc)
    warning = next(e for e in events if e.get("event") == "insecure_bind")
    assert warning["level"] == "warning"


def test_a_token_without_tls_warns_that_kubectl_will_not_send_it(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n", encoding="utf-8")
    proc = _serve(tmp_path, "--address", HOST, "--token-file", str(token))
    started.append(proc)
    events = _warnings_until_serving(proc)
    warning = next(e for e in events if e.get("event") == "token_without_tls")
    assert warning["level"] == "warning"
    assert "kubectl" in warning["detail"]
    assert "t0ken" not in json.dumps(events)
