"""resourceVersion with the real `kubernetes` client and kubectl: a client watch resumed from
the last version it saw gets exactly the changes it missed; one from before the daemon's
history gets 410 Expired, as from an apiserver whose watch cache no longer holds it."""

from __future__ import annotations

import json

import pytest
from conftest import Kubectl, RunningDaemon
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration
NS = "default"


def _secret(core: client.CoreV1Api, name: str) -> client.V1Secret:
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data={"k": "v"})
    return core.create_namespaced_secret(NS, body)


def test_a_resumed_client_watch_gets_exactly_what_it_missed(daemon: RunningDaemon) -> None:
    core = client.CoreV1Api(client.ApiClient(client.Configuration(host=daemon.base_url)))
    listed = core.list_namespaced_secret(NS)
    first = watch.Watch()
    stream = first.stream(
        core.list_namespaced_secret,
        NS,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=30,
    )
    _secret(core, "a")
    event = next(stream)
    assert (event["type"], event["object"].metadata.name) == ("ADDED", "a")
    first.stop()
    stream.close()
    # While no watch is open: a new secret, a label on the first, a deletion.
    _secret(core, "b")
    core.patch_namespaced_secret("a", NS, {"metadata": {"labels": {"x": "y"}}})
    core.delete_namespaced_secret("b", NS)
    # What watch.Watch does when a stream ends: a new one from the last version it saw.
    resumed = watch.Watch()
    missed = []
    for event in resumed.stream(
        core.list_namespaced_secret, NS, resource_version=first.resource_version, timeout_seconds=30
    ):
        missed.append((event["type"], event["object"].metadata.name))
        if len(missed) == 3:
            resumed.stop()
    assert missed == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]


def test_a_client_watch_from_before_the_history_is_410_expired(daemon: RunningDaemon) -> None:
    core = client.CoreV1Api(client.ApiClient(client.Configuration(host=daemon.base_url)))
    w = watch.Watch()
    events = w.stream(core.list_namespaced_secret, NS, resource_version="5", timeout_seconds=5)
    # The client retries a 410 once with the same version, then raises it; no event before.
    with pytest.raises(ApiException) as raised:
        next(events)
    assert raised.value.status == 410
    assert raised.value.reason.startswith("Expired: too old resource version: 5 (")


def test_kubectl_get_raw_watch_from_an_old_version_reads_the_error_event(
    kubectl: Kubectl, daemon: RunningDaemon
) -> None:
    del daemon
    out = kubectl.run(
        "get", "--raw", "/api/v1/namespaces/default/pods?watch=1&resourceVersion=1"
    ).stdout
    event = json.loads(out.splitlines()[0])
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410
    assert event["object"]["message"].startswith("too old resource version: 1 (")
