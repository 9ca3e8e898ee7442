"""Integration fixtures: the daemon as a real process (HTTP or HTTPS) and the real kubectl.

`daemon_factory` starts `python -m kubesim_images serve --port 0` with a tmp state dir and a
config written to tmp_path with fast timing (1 s requeue, no jitter, 20 ms registry latency),
waits for the `serving` log line (which must report the real port) and for /readyz, and at
teardown sends SIGTERM and requires exit code 0 within 10 s. Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

HOST = "127.0.0.1"
MI = 2**20
NODE = "kubesim-node"
PRIVATE_IMAGE = "registry.example.com/team/private:v1"
SLOW_IMAGE = "registry.example.com/team/slow:v1"
MISSING_IMAGE = "registry.example.com/team/missing:v1"  # in no catalogue: manifest unknown
REGISTRY_USER, REGISTRY_PASSWORD = "robot", "s3cret"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

# Never route loopback traffic through a proxy the environment may set; accept the daemon's
# self-signed test certificate.
_TLS = ssl.create_default_context()
_TLS.check_hostname = False
_TLS.verify_mode = ssl.CERT_NONE
_OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=_TLS)
)


def fast_config(*, node_bandwidth: str = "1Gi", **overrides: Any) -> dict[str, Any]:
    """The test config: fast timing, bundled catalogue, a private image and a 10Mi image."""
    config: dict[str, Any] = {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "DaemonConfig",
        "node": {"name": NODE, "bandwidth": node_bandwidth},
        "kubelet": {
            "serializeImagePulls": False,
            "maxParallelImagePulls": 4,
            "registryPullQPS": 0,
        },
        "sync": {"errorRequeue": "1s", "jitterFactor": 0},
        "registry": {
            "latency": "20ms",
            "bundledCatalogue": True,
            "images": [
                {
                    "name": PRIVATE_IMAGE,
                    "layers": [{"size": "1Mi"}],
                    "auth": {"username": REGISTRY_USER, "password": REGISTRY_PASSWORD},
                },
                {"name": SLOW_IMAGE, "layers": [{"size": "10Mi"}]},
            ],
        },
    }
    config.update(overrides)
    return config


def slow_config() -> dict[str, Any]:
    """A node with a 4Mi/s downlink: pulling SLOW_IMAGE (10Mi) stays in flight ~2.5 s."""
    return fast_config(node_bandwidth="4Mi")


def poll(
    probe: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Call `probe` until it returns something truthy; fail with its last answer at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class ApiResponseError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str | None = None,
    timeout: float = 10.0,
    accept: str = "application/json",
) -> tuple[int, Any]:
    """One request; the JSON (or text) answer with its status, errors included."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Accept": accept}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
        exc.close()
    text = raw.decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


@dataclass
class RunningDaemon:
    proc: subprocess.Popen[bytes]
    port: int
    state_dir: Path
    config_path: Path
    log_path: Path
    token: str | None = None
    serving: dict[str, Any] = field(default_factory=dict)
    scheme: str = "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict):
                    out.append(doc)
        return out

    def request(
        self, method: str, path: str, body: Any = None, *, accept: str = "application/json"
    ) -> tuple[int, Any]:
        return http(method, self.base_url + path, body, token=self.token, accept=accept)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """The answer of a request that must succeed (2xx)."""
        status, doc = self.request(method, path, body)
        if not 200 <= status < 300:
            raise ApiResponseError(status, doc)
        return doc

    # -- shortcuts for the default namespace -------------------------------------------------
    def create_pod(
        self, name: str, *images: str, policy: str | None = None, **spec: Any
    ) -> dict[str, Any]:
        """A pod with one container per image (c0, c1, ...); `spec` adds pod spec fields."""
        containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
        if policy is not None:
            for container in containers:
                container["imagePullPolicy"] = policy
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}}
        body["spec"] = {"containers": containers, **spec}
        return self.api("POST", "/api/v1/namespaces/default/pods", body)

    def pod(self, name: str) -> dict[str, Any]:
        return self.api("GET", f"/api/v1/namespaces/default/pods/{name}")

    def pods(self) -> dict[str, dict[str, Any]]:
        items = self.api("GET", "/api/v1/namespaces/default/pods")["items"]
        return {p["metadata"]["name"]: p for p in items}

    def events(self, pod: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.name={pod}"
        return self.api("GET", f"/api/v1/namespaces/default/events?fieldSelector={selector}")[
            "items"
        ]

    def node_image_names(self) -> set[str]:
        node = self.api("GET", f"/api/v1/nodes/{NODE}")
        return {name for image in node["status"]["images"] for name in image["names"]}

    def pulls(self) -> dict[str, Any]:
        return self.api("GET", "/debug/pulls")

    def open_watches(self) -> int:
        """The daemon's `apiserver_longrunning_requests` for WATCH, summed over resources."""
        status, text = self.request("GET", "/metrics")
        assert status == 200
        total = 0
        for line in str(text).splitlines():
            if line.startswith("apiserver_longrunning_requests{") and 'verb="WATCH"' in line:
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def wait_running(self, name: str, timeout: float = 15.0) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            doc = self.pod(name)
            return doc if doc["status"]["phase"] == "Running" else None

        return poll(probe, timeout=timeout, what=f"pod {name} Running")

    def wait_waiting_reason(self, name: str, *reasons: str, timeout: float = 15.0) -> str:
        def probe() -> str | None:
            status = self.pod(name)["status"]["containerStatuses"][0]
            reason = status["state"].get("waiting", {}).get("reason")
            return reason if reason in reasons else None

        return poll(probe, timeout=timeout, what=f"pod {name} waiting in {reasons}")

    # -- lifecycle ---------------------------------------------------------------------------
    def running(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM; the exit code, or a failure (after SIGKILL) if it does not exit in time."""
        if not self.running():
            return int(self.proc.returncode)
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"the daemon did not exit within {timeout}s of SIGTERM; log:\n{self.log()[-4000:]}"
            )

    def kill(self) -> None:
        """SIGKILL, as `kill -9`: nothing runs in the daemon after this."""
        if self.running():
            self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT)


def _wait_started(
    proc: subprocess.Popen[bytes], log_path: Path, token: str | None, scheme: str
) -> dict[str, Any]:
    """The `serving` log line once the daemon answers /readyz 200 on the port it reports."""
    deadline = time.monotonic() + START_TIMEOUT
    serving: dict[str, Any] | None = None
    while serving is None:
        if proc.poll() is not None:
            pytest.fail(
                f"the daemon exited with {proc.returncode} before serving; log:\n"
                + log_path.read_text(encoding="utf-8", errors="replace")
            )
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict) and doc.get("event") == "serving":
                    serving = doc
                    break
        if time.monotonic() > deadline:
            pytest.fail(f"no 'serving' log line within {START_TIMEOUT}s")
        time.sleep(0.02)
    port = serving.get("port")
    assert isinstance(port, int), f"serving line without a port: {serving}"
    assert 0 < port < 65536, f"--port 0 must be reported as the real bound port: {serving}"
    url = f"{scheme}://{HOST}:{port}/readyz"
    while True:
        try:
            status, _ = http("GET", url, token=token, timeout=2)
        except OSError:
            status = 0
        if status == 200:
            return serving
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"/readyz never answered 200 on the reported port {port} (last {status})")
        time.sleep(0.02)


class DaemonFactory:
    """Starts daemons; every one still running at teardown must exit 0 on SIGTERM in 10 s."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[RunningDaemon] = []
        self._count = 0

    def __call__(
        self,
        config: dict[str, Any] | None = None,
        *,
        state_dir: Path | None = None,
        token: str | None = None,
        tls: bool = False,
        embedded: bool = False,
    ) -> RunningDaemon:
        """`embedded=True` runs without --config, as `make run` does (the config is unused)."""
        self._count += 1
        n = self._count
        config_path = self.tmp_path / f"daemon-{n}.yaml"
        config_path.write_text(yaml.safe_dump(config or fast_config()), encoding="utf-8")
        state_dir = state_dir or self.tmp_path / "state"
        log_path = self.tmp_path / f"daemon-{n}.log"
        args = [
            sys.executable,
            "-m",
            "kubesim_images",
            "serve",
            "--address",
            HOST,
            "--port",
            "0",
            *(() if embedded else ("--config", str(config_path))),
            "--state-dir",
            str(state_dir),
        ]
        if token is not None:
            token_file = self.tmp_path / f"token-{n}"
            token_file.write_text(token + "\n", encoding="utf-8")
            args += ["--token-file", str(token_file)]
        scheme = "http"
        if tls:
            cert, key = make_certificate(self.tmp_path)
            args += ["--tls-cert-file", str(cert), "--tls-private-key-file", str(key)]
            scheme = "https"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            serving = _wait_started(proc, log_path, token, scheme)
        except BaseException:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise
        daemon = RunningDaemon(
            proc, serving["port"], state_dir, config_path, log_path, token, serving, scheme
        )
        self.started.append(daemon)
        return daemon

    def close(self) -> None:
        problems = []
        for daemon in self.started:
            if not daemon.running():
                daemon.proc.wait()
                continue
            daemon.proc.send_signal(signal.SIGTERM)
            try:
                code = daemon.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                daemon.proc.kill()
                daemon.proc.wait()
                problems.append(f"port {daemon.port}: no exit within {STOP_TIMEOUT}s of SIGTERM")
                continue
            if code != 0:
                problems.append(
                    f"port {daemon.port}: exit code {code} after SIGTERM; log tail:\n"
                    + daemon.log()[-3000:]
                )
        if problems:
            pytest.fail("daemon shutdown: " + "\n".join(problems))


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[DaemonFactory]:
    factory = DaemonFactory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture
def daemon(daemon_factory: DaemonFactory) -> RunningDaemon:
    """One daemon with the fast test config, stopped with SIGTERM (exit 0 required)."""
    return daemon_factory()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    """One daemon for a whole module whose tests need no fresh one (each uses its own names):
    one start instead of one per test keeps `make test` short."""
    factory = DaemonFactory(tmp_path_factory.mktemp("shared-daemon"))
    yield factory()
    factory.close()


@pytest.fixture
def core(daemon: RunningDaemon) -> Iterator[Any]:
    """The `kubernetes` client's CoreV1Api on `daemon` (imported here: only some tests use it)."""
    from kubernetes import client  # noqa: PLC0415

    with client.ApiClient(client.Configuration(host=daemon.base_url)) as api_client:
        yield client.CoreV1Api(api_client)


# -- kubectl ----------------------------------------------------------------------------------
def _require_tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not on PATH, and CI must have it: {why}")
        pytest.skip(f"!!! {name} NOT FOUND ON PATH: {why} — THESE TESTS DID NOT RUN !!!")
    return path


@pytest.fixture
def kubectl_bin() -> str:
    return _require_tool("kubectl", "the integration tests drive the real kubectl")


class Kubectl:
    """The real kubectl against one server, with a fresh HOME and no kubeconfig."""

    def __init__(self, binary: str, server: str, home: Path, *flags: str) -> None:
        self.binary = binary
        self.server = server
        self.home = home
        self.flags = flags
        home.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
        env.update(HOME=str(self.home), KUBECONFIG="/dev/null", NO_PROXY=HOST, no_proxy=HOST)
        return env

    def run(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--server", self.server, *self.flags, *args]
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env(),
            input=stdin,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"{' '.join(cmd)} exited {result.returncode}\nstdout: {result.stdout}\n"
                f"stderr: {result.stderr}"
            )
        return result

    def with_flags(self, *flags: str, server: str | None = None) -> Kubectl:
        return Kubectl(self.binary, server or self.server, self.home, *flags)

    @contextlib.contextmanager
    def watch_pod(self, daemon: RunningDaemon, name: str) -> Iterator[KubectlWatch]:
        """`kubectl get pods --watch` for one pod, open on the daemon before the pod exists.

        Polling can miss a state that lasts one sync; the watch sees every change. kubectl
        lists, then watches from the list's resourceVersion: the daemon is asked how many
        watches it holds, so the pod is created only once this one is open.
        """
        args = ("get", "pods", "--watch", "--no-headers", "--field-selector")
        with self.watch(daemon, name, *args, f"metadata.name={name}") as watch:
            yield watch

    @contextlib.contextmanager
    def watch(self, daemon: RunningDaemon, name: str, *args: str) -> Iterator[KubectlWatch]:
        """`kubectl ARGS` (a command that watches), yielded once the daemon holds its watch."""
        before = daemon.open_watches()
        cmd = [self.binary, "--server", self.server, *self.flags, *args]
        stderr_path = self.home / f"watch-{name}.stderr"

        def stderr_text() -> str:
            return stderr_path.read_text(encoding="utf-8", errors="replace")[-2000:]

        with stderr_path.open("wb") as stderr:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=self.env(),
            )
        watch = KubectlWatch(proc, name)
        try:
            # Bounds a hang only (kubectl starts, discovers, lists, then watches).
            deadline = time.monotonic() + 60
            while daemon.open_watches() <= before:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"kubectl's watch never opened (exit {proc.poll()}): {stderr_text()}"
                    )
                time.sleep(0.05)
            yield watch
        finally:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
            watch.reader.join(timeout=STOP_TIMEOUT)
            if proc.stdout is not None:
                proc.stdout.close()
            # The daemon ends a watch whose client went at its next liveness pass: wait for it,
            # so that the next watch's `before` does not count this one (it would then wait
            # for a rise that the end of this one cancels out).
            deadline = time.monotonic() + STOP_TIMEOUT
            while daemon.running() and time.monotonic() < deadline:
                if daemon.open_watches() <= before:
                    break
                time.sleep(0.05)


class KubectlWatch:
    """The lines of a running `kubectl get --watch`, read on a thread so waits can time out."""

    def __init__(self, proc: subprocess.Popen[str], name: str) -> None:
        self.proc = proc
        self.name = name
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def statuses_until(self, until: str, timeout: float = 30.0) -> list[str]:
        """Each distinct STATUS the watch printed, in order, up to `until`.

        `timeout` only bounds a hang: every change arrives, so no state can be missed.
        """
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while not seen or seen[-1] != until:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no STATUS {until} for {self.name} within {timeout}s; saw {seen}")
            if line is None:
                pytest.fail(f"kubectl's watch ended before STATUS {until}; saw {seen}")
            cells = line.split()
            if cells and cells[0] == self.name and (not seen or seen[-1] != cells[2]):
                seen.append(cells[2])
        return seen

    def line_with(self, text: str, timeout: float = 30.0) -> tuple[str, list[str]]:
        """The first printed line containing `text`, and every line printed before it.

        `timeout` only bounds a hang.
        """
        before: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line with {text!r} within {timeout}s; saw {before}")
            if line is None:
                pytest.fail(f"kubectl's watch ended before a line with {text!r}; saw {before}")
            if text in line:
                return line, before
            before.append(line)


@pytest.fixture
def kubectl(kubectl_bin: str, daemon: RunningDaemon, tmp_path: Path) -> Kubectl:
    return Kubectl(kubectl_bin, daemon.base_url, tmp_path / "home")


@pytest.fixture(scope="module")
def shared_kubectl(
    shared_daemon: RunningDaemon, tmp_path_factory: pytest.TempPathFactory
) -> Kubectl:
    """kubectl against `shared_daemon`."""
    binary = _require_tool("kubectl", "the integration tests drive the real kubectl")
    return Kubectl(binary, shared_daemon.base_url, tmp_path_factory.mktemp("home"))


# -- TLS: kubectl sends --token only over https ---------------------------------------------
def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with openssl at test time."""
    openssl = _require_tool("openssl", "it makes the daemon's self-signed TLS certificate")
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={HOST}",
            "-addext",
            f"subjectAltName=IP:{HOST}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key
