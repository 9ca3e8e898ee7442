"""Node leases in `kube-node-lease`: what `kubectl describe node` GETs for its `Lease:` section,
owned by the node and renewed on the kubelet's 10 s steps since its registration."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from apikit import Client, assert_status, cluster_of

LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


async def test_a_node_has_its_lease(client: Client) -> None:
    node = await (await client.get("/api/v1/nodes/kubesim-node")).json()
    resp = await client.get(f"{LEASES}/kubesim-node")
    lease = await resp.json()
    assert resp.status == 200, lease
    assert (lease["kind"], lease["apiVersion"]) == ("Lease", "coordination.k8s.io/v1")
    meta = lease["metadata"]
    assert (meta["name"], meta["namespace"]) == ("kubesim-node", "kube-node-lease")
    assert meta["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "kubesim-node", "uid": node["metadata"]["uid"]}
    ]
    assert meta["creationTimestamp"] == node["metadata"]["creationTimestamp"]
    again = await (await client.get(f"{LEASES}/kubesim-node")).json()
    assert again["metadata"]["uid"] == meta["uid"]
    spec = lease["spec"]
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"]) == ("kubesim-node", 40)
    assert MICRO_TIME.match(spec["renewTime"]), spec["renewTime"]


async def test_the_lease_is_renewed_on_ten_second_steps_from_registration(client: Client) -> None:
    lease = await (await client.get(f"{LEASES}/kubesim-node")).json()
    cluster = cluster_of(client)
    now = cluster.clock.epoch(cluster.clock.now_ns())
    renewed = dt.datetime.strptime(lease["spec"]["renewTime"], "%Y-%m-%dT%H:%M:%S.%f%z")
    since_registration = Decimal(str(renewed.timestamp())) - Decimal(
        str(cluster.node_objects.by_name["kubesim-node"].created_epoch)
    )
    # A whole number of 10 s renewals, to the microsecond MicroTime keeps.
    assert abs(since_registration - round(since_registration / 10) * 10) <= Decimal("0.000001")
    assert renewed.timestamp() <= now


@pytest.mark.parametrize(
    "path",
    [
        f"{LEASES}/no-such-node",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases/kubesim-node",
    ],
)
async def test_any_other_lease_is_not_found(client: Client, path: str) -> None:
    resp = await client.get(path)
    body = await resp.json()
    assert_status(body, 404, "NotFound")
    name = path.rsplit("/", 1)[1]
    assert body["message"] == f'leases.coordination.k8s.io "{name}" not found'
    assert body["details"] == {"name": name, "group": "coordination.k8s.io", "kind": "leases"}


async def test_discovery_lists_leases_with_the_one_verb_served(client: Client) -> None:
    groups = await (await client.get("/apis")).json()
    assert "coordination.k8s.io" in [g["name"] for g in groups["groups"]]
    doc = await (await client.get("/apis/coordination.k8s.io/v1")).json()
    assert doc["resources"] == [
        {
            "name": "leases",
            "singularName": "lease",
            "namespaced": True,
            "kind": "Lease",
            "verbs": ["get"],
        }
    ]
    assert (await client.get(LEASES)).status == 404  # no list: discovery does not promise one
