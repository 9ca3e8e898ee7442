"""The daemon as a process: state survives `kill -9`, back-off and pulls resume after a restart,
SIGTERM drains promptly, the bearer token guards the API, invalid configs refuse to start.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    MISSING_IMAGE,
    NODE,
    PRIVATE_IMAGE,
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    SLOW_IMAGE,
    DaemonFactory,
    Kubectl,
    RunningDaemon,
    fast_config,
    http,
    poll,
    slow_config,
)
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration
NS = "/api/v1/namespaces/default"


def summary(pod: dict[str, Any]) -> tuple[str, str, list[tuple[str, str]]]:
    """uid, phase and each container's state and waiting reason."""
    states = []
    for cs in pod["status"]["containerStatuses"]:
        (state, detail), *_ = cs["state"].items()
        states.append((state, detail.get("reason", "")))
    return pod["metadata"]["uid"], pod["status"]["phase"], states


def regcred() -> dict[str, Any]:
    auth = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    config = json.dumps({"auths": {"registry.example.com": {"auth": auth}}}).encode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "regcred"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(config).decode()},
    }


def backoff_entry(daemon: RunningDaemon, key: str) -> dict[str, Any] | None:
    return next((b for b in daemon.pulls()["backoff"] if b["key"] == key), None)


def count(daemon: RunningDaemon, pod: str, reason: str) -> int:
    return sum(e["count"] for e in daemon.events(pod) if e["reason"] == reason)


def test_state_survives_sigkill(daemon_factory: DaemonFactory) -> None:
    first = daemon_factory()
    first.api("POST", f"{NS}/secrets", regcred())
    first.api(
        "POST",
        f"{NS}/serviceaccounts",
        {"metadata": {"name": "builder"}, "imagePullSecrets": [{"name": "regcred"}]},
    )
    first.create_pod("web", "nginx:1.27")
    first.create_pod("robot", PRIVATE_IMAGE, serviceAccountName="builder")
    first.create_pod("ghost", MISSING_IMAGE)
    first.create_pod("never", "redis:7.4", policy="Never")
    first.wait_running("web")
    first.wait_running("robot")
    first.wait_waiting_reason("ghost", "ImagePullBackOff")
    first.wait_waiting_reason("never", "ErrImageNeverPull")
    before = {name: summary(pod) for name, pod in first.pods().items()}
    pulled_event = [e for e in first.events("web") if e["reason"] == "Pulled"]
    assert pulled_event

    first.kill()
    assert first.proc.returncode == -9

    second = daemon_factory(state_dir=first.state_dir)
    assert second.serving["pods"] == 4
    after = {name: summary(pod) for name, pod in second.pods().items()}
    assert after == before
    assert second.pod("robot")["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    secret = second.api("GET", f"{NS}/secrets/regcred")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    account = second.api("GET", f"{NS}/serviceaccounts/builder")
    assert account["imagePullSecrets"] == [{"name": "regcred"}]
    assert {"docker.io/library/nginx:1.27", PRIVATE_IMAGE} <= second.node_image_names()
    assert [e["message"] for e in second.events("web") if e["reason"] == "Pulled"] == [
        e["message"] for e in pulled_event
    ]
    # The restored secret still works: a new pod pulls the private image with it.
    second.create_pod("robot2", PRIVATE_IMAGE, imagePullSecrets=[{"name": "regcred"}])
    assert summary(second.wait_running("robot2"))[1] == "Running"


def test_pods_of_a_node_no_longer_configured_are_deleted_and_replaced(
    daemon_factory: DaemonFactory,
) -> None:
    """As the pod garbage collector deletes a pod whose node is gone: a bare pod is gone, a
    Deployment's pods are made again on the nodes there are (none is left Pending)."""
    first = daemon_factory()
    labels = {"app": "web"}
    template = {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
    }
    first.api(
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        {
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": template},
        },
    )
    first.create_pod("bare", "nginx:1.27")
    first.wait_running("bare")
    poll(lambda: len(first.pods()) == 3, timeout=15, what="the deployment's two pods")
    old = set(first.pods())
    assert first.terminate() == 0

    moved = fast_config(node={"name": "other-node", "bandwidth": "1Gi"})
    second = daemon_factory(moved, state_dir=first.state_dir)

    def replaced() -> dict[str, Any] | None:
        pods = second.pods()
        running = all(p["status"]["phase"] == "Running" for p in pods.values())
        return pods if len(pods) == 2 and running else None

    pods = poll(replaced, timeout=30, what="two new pods of the deployment Running")
    assert not set(pods) & old
    assert {p["spec"]["nodeName"] for p in pods.values()} == {"other-node"}
    orphaned = [e for e in second.log_events() if e.get("event") == "pod_orphaned_deleted"]
    assert sorted(e["pod"] for e in orphaned) == sorted(f"default/{name}" for name in old)
    assert {e["node"] for e in orphaned} == {NODE}


def test_back_off_resumes_after_sigkill(daemon_factory: DaemonFactory) -> None:
    first = daemon_factory()
    uid = first.create_pod("ghost", MISSING_IMAGE)["metadata"]["uid"]
    key = f"{uid}_{MISSING_IMAGE}"
    first.wait_waiting_reason("ghost", "ImagePullBackOff")
    entry = poll(lambda: backoff_entry(first, key), timeout=5, what="a back-off entry")
    assert entry["backoffSeconds"] >= 2
    assert entry["inBackOff"] is True
    assert count(first, "ghost", "Pulling") == 1

    first.kill()
    second = daemon_factory(state_dir=first.state_dir)
    restored = backoff_entry(second, key)
    assert restored is not None, second.pulls()
    assert restored["podUID"] == uid
    assert restored["image"] == MISSING_IMAGE
    assert restored["backoffSeconds"] == entry["backoffSeconds"]
    assert restored["lastUpdate"] == entry["lastUpdate"]
    assert second.wait_waiting_reason("ghost", "ImagePullBackOff") == "ImagePullBackOff"

    # The restarted pod worker keeps syncing: back-off reported again, no early pull ...
    backoffs = count(second, "ghost", "BackOff")
    poll(lambda: count(second, "ghost", "BackOff") > backoffs, timeout=5, what="a new BackOff")
    assert count(second, "ghost", "Pulling") == 1
    # ... then, once the restored back-off expires, it pulls again and the delay doubles.
    poll(lambda: count(second, "ghost", "Pulling") >= 2, timeout=15, what="a retried pull")

    def grown() -> dict[str, Any] | None:
        current = backoff_entry(second, key)
        return current if current and current["backoffSeconds"] > entry["backoffSeconds"] else None

    doubled = poll(grown, timeout=5, what="the back-off to double")
    assert doubled["backoffSeconds"] == 2 * entry["backoffSeconds"]


def test_pull_in_flight_at_sigkill_resumes(daemon_factory: DaemonFactory) -> None:
    first = daemon_factory(slow_config())
    first.create_pod("big", SLOW_IMAGE)

    def in_flight() -> list[dict[str, Any]]:
        return [p for p in first.pulls()["inFlight"] if p["pod"] == "default/big"]

    pulls = poll(in_flight, timeout=5, what="the pull in flight")
    assert pulls[0]["reference"] == SLOW_IMAGE
    first.kill()

    second = daemon_factory(slow_config(), state_dir=first.state_dir)
    assert second.pod("big")["status"]["phase"] == "Pending"
    assert SLOW_IMAGE not in second.node_image_names()
    running = second.wait_running("big", timeout=20)
    assert running["status"]["containerStatuses"][0]["imageID"].startswith(
        "registry.example.com/team/slow@sha256:"
    )
    assert SLOW_IMAGE in second.node_image_names()
    assert any(e["reason"] == "Pulled" for e in second.events("big"))


def drain_log(daemon: RunningDaemon) -> tuple[list[str], dict[str, Any]]:
    """The daemon's log events in order, and its `watches_closed` line."""
    events = daemon.log_events()
    (closed,) = [e for e in events if e.get("event") == "watches_closed"]
    return [str(e.get("event")) for e in events], closed


def test_sigterm_drains_with_pulls_in_flight(daemon_factory: DaemonFactory) -> None:
    first = daemon_factory(slow_config())
    for name in ("a", "b", "c"):
        first.create_pod(name, SLOW_IMAGE)
    first.create_pod("d", "busybox:1.36")
    # Three 10Mi pulls share a 4Mi/s downlink: they stay in flight for ~7 s.
    poll(lambda: len(first.pulls()["inFlight"]) >= 3, timeout=15, what="three pulls in flight")

    # Exit 0 means the drain finished inside the daemon's own 5 s deadline.
    code = first.terminate(timeout=10)
    assert code == 0, first.log()[-3000:]
    events, closed = drain_log(first)
    assert events.index("draining") < events.index("watches_closed") < events.index("stopped")
    assert (closed["ended"], closed["aborted"]) == (0, 0)

    # A graceful stop keeps the pods and their pulls: they finish after the next start.
    second = daemon_factory(slow_config(), state_dir=first.state_dir)
    assert set(second.pods()) == {"a", "b", "c", "d"}
    for name in ("a", "b", "c", "d"):
        second.wait_running(name, timeout=30)


def test_sigterm_with_an_open_watch_exits_promptly(daemon: RunningDaemon, kubectl: Kubectl) -> None:
    """`kubectl get pods -w` (any informer) holds a streaming request open; SIGTERM ends it
    with the end of its stream at once (no abort, no drain timeout), and the daemon exits 0.
    """
    daemon.create_pod("web", "busybox:1.36")
    daemon.wait_running("web")
    watch = subprocess.Popen(
        [kubectl.binary, "--server", kubectl.server, "get", "pods", "--watch", "--no-headers"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kubectl.env(),
    )
    try:
        assert watch.stdout is not None
        first = watch.stdout.readline()  # the initial list
        assert first.split()[:3] == ["web", "1/1", "Running"], first
        # kubectl lists, then opens its watch: wait until the daemon counts it open.
        poll(lambda: daemon.open_watches() == 1, timeout=15, what="kubectl's watch open")
        code = daemon.terminate(timeout=10)
        assert code == 0, daemon.log()[-3000:]
        events, closed = drain_log(daemon)
        assert (closed["ended"], closed["aborted"]) == (1, 0), closed
        assert events.index("draining") < events.index("watches_closed") < events.index("stopped")
        assert "cannot serve" not in daemon.log()
        watch.wait(timeout=10)  # the watch ends when the server goes away
    finally:
        if watch.poll() is None:
            watch.kill()
        watch.communicate(timeout=10)


def test_sigterm_with_a_watch_client_that_stopped_reading(daemon: RunningDaemon) -> None:
    """A watch client that never reads blocks the daemon's writes; SIGTERM still exits 0."""
    padding = "x" * 200_000
    for i in range(40):  # ~8 MB of pods: more than the socket buffers can hold
        daemon.api(
            "POST",
            f"{NS}/pods",
            {
                "metadata": {"name": f"big-{i}", "annotations": {"padding": padding}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
            },
        )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", daemon.port))
        sock.sendall(
            f"GET {NS}/pods?watch=1 HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n\r\n".encode()
        )
        poll(lambda: daemon.open_watches() == 1, timeout=15, what="the stalled watch open")
        code = daemon.terminate(timeout=10)  # never reading a byte of the stream
        assert code == 0, daemon.log()[-3000:]
    _, closed = drain_log(daemon)
    assert closed["ended"] + closed["aborted"] == 1, closed


def test_bearer_token_guards_the_api(
    daemon_factory: DaemonFactory,
    kubectl_bin: str,
    tmp_path: Path,
) -> None:
    token = "integration-token-123"
    daemon = daemon_factory(token=token, tls=True)
    url = daemon.base_url

    for method, path, body in [
        ("GET", "/api/v1/pods", None),
        ("GET", f"{NS}/pods", None),
        ("POST", f"{NS}/pods", {"metadata": {"name": "x"}}),
        ("GET", "/version", None),
        ("GET", "/debug/pulls", None),
    ]:
        status, doc = http(method, url + path, body)
        assert status == 401, (path, status, doc)
        assert doc["kind"] == "Status"
        assert doc["reason"] == "Unauthorized"
        assert http(method, url + path, body, token="wrong")[0] == 401
    assert http("GET", url + "/healthz")[0] == 200  # probes without credentials
    assert http("GET", url + "/api/v1/pods", token=token)[0] == 200

    # The official client with the token, and without it.
    configuration = client.Configuration(host=url)
    configuration.ssl_ca_cert = str(tmp_path / "tls.crt")  # the daemon's self-signed cert
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    with client.ApiClient(configuration) as api_client:
        core = client.CoreV1Api(api_client)
        core.create_namespaced_pod(
            "default",
            client.V1Pod(
                metadata=client.V1ObjectMeta(name="authed"),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image="busybox:1.36")]
                ),
            ),
        )
        assert [p.metadata.name for p in core.list_namespaced_pod("default").items] == ["authed"]
    anonymous = client.Configuration(host=url)
    anonymous.ssl_ca_cert = str(tmp_path / "tls.crt")
    with client.ApiClient(anonymous) as api_client:
        with pytest.raises(ApiException) as excinfo:
            client.CoreV1Api(api_client).list_namespaced_pod("default")
        assert excinfo.value.status == 401

    # kubectl sends credentials (--token included) only over TLS (client-go's clientcmd reads
    # auth info only when the transport is TLS), which is why this daemon serves HTTPS.
    secure = Kubectl(kubectl_bin, url, tmp_path / "home", "--insecure-skip-tls-verify")
    refused = secure.run("get", "pods", check=False)
    assert refused.returncode == 1  # over https kubectl asks for a username on 401, gets EOF
    wrong = secure.with_flags("--insecure-skip-tls-verify", "--token", "wrong")
    refused = wrong.run("get", "pods", check=False)
    assert refused.returncode == 1
    assert "You must be logged in to the server" in refused.stderr

    authed = secure.with_flags("--insecure-skip-tls-verify", "--token", token)
    rows = authed.run("get", "pods", "--no-headers").stdout.split()
    assert rows[0] == "authed"
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "via-kubectl"},
                "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
            }
        ),
        encoding="utf-8",
    )
    assert authed.run("create", "-f", str(manifest)).stdout.strip() == "pod/via-kubectl created"
    assert "via-kubectl" in daemon.pods()


def test_invalid_config_refuses_to_start(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("kubelet: {maxParallelImagePulls: 0}\n", encoding="utf-8")
    result = subprocess.run(
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
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "invalid configuration: maxParallelImagePulls 0 must be a positive number" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert '"serving"' not in result.stderr
