"""Watches on every kind the daemon lists, with the real kubectl and the `kubernetes` client:
`get events -w`, `kubectl events -w`, a client watch on events, secrets, service accounts,
namespaces and nodes; each change sent once; a deleted pod's last row; SIGTERM ends them."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import STOP_TIMEOUT, Kubectl, RunningDaemon, poll
from kubernetes import client, watch
from urllib3.exceptions import ProtocolError

pytestmark = pytest.mark.integration

PODS = "/api/v1/namespaces/default/pods"


def raw_watch(daemon: RunningDaemon, path: str) -> Iterator[dict[str, Any]]:
    """A watch from the daemon's current version (changes only), opened before this returns."""
    version = daemon.api("GET", path)["metadata"]["resourceVersion"]
    sep = "&" if "?" in path else "?"
    url = f"{daemon.base_url}{path}{sep}watch=1&resourceVersion={version}&timeoutSeconds=30"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    before = daemon.open_watches()
    response = opener.open(url, timeout=30)
    assert daemon.open_watches() == before + 1  # headers are sent once it is subscribed

    def lines() -> Iterator[dict[str, Any]]:
        with response:
            for line in response:
                yield json.loads(line)

    return lines()


def test_get_events_watch_shows_a_new_event_live(kubectl: Kubectl, daemon: RunningDaemon) -> None:
    with kubectl.watch(daemon, "events", "get", "events", "--watch", "--no-headers") as stream:
        daemon.create_pod("web", "nginx:1.27")
        line, _ = stream.line_with('Pulling image "nginx:1.27"')
    assert "Normal" in line.split()
    assert "pod/web" in line.split()


def test_kubectl_events_watch_shows_a_new_event_live(
    kubectl: Kubectl, daemon: RunningDaemon
) -> None:
    with kubectl.watch(daemon, "events-cmd", "events", "--watch") as stream:
        daemon.create_pod("web", "nginx:1.27")
        line, _ = stream.line_with('Successfully pulled image "nginx:1.27"')
    assert "Pulled" in line.split()
    assert "Pod/web" in line.split()


def test_client_watch_on_events_yields_new_events(daemon: RunningDaemon) -> None:
    core = client.CoreV1Api(client.ApiClient(client.Configuration(host=daemon.base_url)))
    watcher = watch.Watch()
    seen: queue.Queue[tuple[str, str] | None] = queue.Queue()

    def read() -> None:
        events = watcher.stream(core.list_namespaced_event, "default", timeout_seconds=30)
        # The daemon's stop at teardown ends a stream still open: not this test's concern.
        with contextlib.suppress(ProtocolError):
            for event in events:
                seen.put((event["type"], event["object"].reason))
        seen.put(None)

    before = daemon.open_watches()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    poll(lambda: daemon.open_watches() > before, timeout=60, what="the client watch open")
    daemon.create_pod("web", "nginx:1.27")
    reasons: list[str] = []
    while "Pulled" not in reasons:
        item = seen.get(timeout=30)  # bounds a hang only
        assert item is not None, f"the watch ended early; saw {reasons}"
        assert item[0] == "ADDED"
        reasons.append(item[1])
    watcher.stop()
    assert reasons == ["Scheduled", "Pulling", "Pulled"]


def test_every_listed_kind_can_be_watched(kubectl: Kubectl, daemon: RunningDaemon) -> None:
    with kubectl.watch(daemon, "secrets", "get", "secrets", "-w", "--no-headers") as stream:
        kubectl.run("create", "secret", "generic", "token", "--from-literal=k=v")
        line, _ = stream.line_with("token")
        assert line.split()[:3] == ["token", "Opaque", "1"]
    with kubectl.watch(daemon, "sa", "get", "serviceaccounts", "-w", "--no-headers") as stream:
        kubectl.run("create", "serviceaccount", "builder")
        assert stream.line_with("builder")[0].split()[0] == "builder"
    with kubectl.watch(daemon, "ns", "get", "namespaces", "-w", "--no-headers") as stream:
        kubectl.run("create", "namespace", "team")
        assert stream.line_with("team")[0].split()[:2] == ["team", "Active"]
    with kubectl.watch(daemon, "nodes", "get", "nodes", "-w", "--no-headers") as stream:
        assert stream.line_with("Ready")[0].split()[0] == "kubesim-node"
    secrets = raw_watch(daemon, "/api/v1/namespaces/default/secrets")
    kubectl.run("label", "secret", "token", "a=b")
    change = next(secrets)
    assert change["type"] == "MODIFIED"
    assert change["object"]["metadata"]["labels"] == {"a": "b"}
    assert change["object"]["data"] == {"k": ""}  # a watch never shows a secret's values


def test_each_change_is_sent_once(kubectl: Kubectl, daemon: RunningDaemon) -> None:
    daemon.create_pod("web", "nginx:1.27")
    daemon.wait_running("web")
    changes = raw_watch(daemon, f"{PODS}?fieldSelector=metadata.name%3Dweb")
    kubectl.run("label", "pod", "web", "first=1")
    kubectl.run("label", "pod", "web", "second=2")
    got = [next(changes), next(changes)]
    assert [c["type"] for c in got] == ["MODIFIED", "MODIFIED"]
    assert [sorted(c["object"]["metadata"]["labels"]) for c in got] == [
        ["first"],
        ["first", "second"],
    ]


def test_a_deleted_pods_last_row_is_deleted_with_its_last_status(
    kubectl: Kubectl, daemon: RunningDaemon
) -> None:
    daemon.create_pod("web", "nginx:1.27")
    daemon.wait_running("web")
    changes = raw_watch(daemon, f"{PODS}?fieldSelector=metadata.name%3Dweb")
    with kubectl.watch_pod(daemon, "web") as stream:
        stream.statuses_until("Running")
        kubectl.run("delete", "pod", "web", "--wait=false")
        assert stream.statuses_until("Terminating")[-1] == "Terminating"
        # As a real cluster prints it: 1/1 Terminating, then 0/1 once the container exited
        # (its status, then its deletion).
        rows = [stream.lines.get(timeout=30).split()[1:3] for _ in range(2)]  # bounds a hang
        assert rows == [["0/1", "Terminating"]] * 2
    marked = next(changes)  # graceful: marked for deletion first, then stopped, then removed
    assert marked["type"] == "MODIFIED"
    assert marked["object"]["metadata"]["deletionGracePeriodSeconds"] == 30
    stopped = next(changes)
    assert stopped["type"] == "MODIFIED"
    assert stopped["object"]["status"]["containerStatuses"][0]["ready"] is False
    last = next(changes)
    assert last["type"] == "DELETED"
    assert last["object"]["metadata"]["deletionTimestamp"]
    assert last["object"]["status"]["phase"] == "Running"  # its last status, not a blank one
    assert last["object"]["status"] == stopped["object"]["status"]


def test_sigterm_ends_an_events_watch(kubectl: Kubectl, daemon: RunningDaemon) -> None:
    with kubectl.watch(daemon, "events", "get", "events", "-w") as stream:
        assert daemon.terminate() == 0
        stream.proc.wait(timeout=STOP_TIMEOUT)


def test_watches_whose_clients_left_are_released(kubectl: Kubectl, daemon: RunningDaemon) -> None:
    """A watch that matches nothing never writes; its client's disconnect alone must free it
    (the gauge once stayed up until a matching change arrived)."""
    for i in range(3):  # each kubectl is killed as its block ends
        selector = f"metadata.name=ghost{i}"
        with kubectl.watch(daemon, f"ghost{i}", "get", "pods", "-w", "--field-selector", selector):
            pass
    responses = []
    for i in range(5):  # and raw watches whose connections are closed
        url = f"{daemon.base_url}{PODS}?watch=1&fieldSelector=metadata.name%3Dghost{i}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        responses.append(opener.open(url, timeout=30))  # once its headers are in: registered
    assert daemon.open_watches() >= 5
    for response in responses:
        response.close()
    poll(lambda: daemon.open_watches() == 0, timeout=30, what="every watch released")
