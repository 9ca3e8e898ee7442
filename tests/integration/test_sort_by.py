"""`kubectl get --sort-by` on fields outside metadata: kubectl asks for Tables with
`includeObject=Object`, and sorts the rows by each row's full object."""

from __future__ import annotations

import pytest
from conftest import Kubectl, RunningDaemon

pytestmark = pytest.mark.integration

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def test_get_pods_sorted_by_fields_outside_metadata(
    kubectl: Kubectl, daemon: RunningDaemon
) -> None:
    daemon.create_pod("zeta", "busybox:1.36")
    daemon.create_pod("alpha", "nginx:1.27")
    for name in ("zeta", "alpha"):
        daemon.wait_running(name)
    # Start times share a second here, so this shows rows, not their order.
    out = kubectl.run("get", "pods", "--sort-by=.status.startTime", "--no-headers").stdout
    assert sorted(line.split()[0] for line in out.splitlines()) == ["alpha", "zeta"]
    out = kubectl.run("get", "pods", "--sort-by=.spec.containers[0].image", "--no-headers")
    assert [line.split()[0] for line in out.stdout.splitlines()] == ["zeta", "alpha"]
    out = kubectl.run("get", "pods", "--sort-by=.metadata.name", "--no-headers")
    assert [line.split()[0] for line in out.stdout.splitlines()] == ["alpha", "zeta"]


def test_get_events_sorted_by_last_timestamp(kubectl: Kubectl, daemon: RunningDaemon) -> None:
    daemon.create_pod("web", "nginx:1.27")
    daemon.wait_running("web")
    out = kubectl.run("get", "events", "--sort-by=.lastTimestamp").stdout.splitlines()
    assert out[0].split()[:3] == ["LAST", "SEEN", "TYPE"]
    reasons = [line.split()[2] for line in out[1:]]
    assert reasons == ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
    assert "No resources found" not in "\n".join(out)


def test_table_rows_carry_what_include_object_asks(daemon: RunningDaemon) -> None:
    daemon.create_pod("web", "nginx:1.27")
    path = "/api/v1/namespaces/default/pods"
    for include, kind in (("Object", "Pod"), ("Metadata", "PartialObjectMetadata"), ("", None)):
        status, table = daemon.request("GET", f"{path}?includeObject={include}", accept=TABLE)
        assert status == 200
        row = table["rows"][0]["object"]
        if kind is None:
            assert row["kind"] == "PartialObjectMetadata"  # the default
        else:
            assert row["kind"] == kind
    status, table = daemon.request("GET", f"{path}?includeObject=None", accept=TABLE)
    assert table["rows"][0]["object"] is None
    assert table["rows"][0]["cells"][0] == "web"
    status, error = daemon.request("GET", f"{path}?includeObject=All", accept=TABLE)
    assert status == 400
    assert error["message"] == (
        "includeObject: Invalid value: \"All\": must be 'Metadata', 'Object', 'None', or empty"
    )
