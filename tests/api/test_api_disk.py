"""The node's disk through the API: ephemeral-storage and DiskPressure from the image
filesystem, image GC's node events as `kubectl describe node` finds them, and a pull that does
not fit.
"""

from __future__ import annotations

from typing import Any

from apikit import (
    MI,
    Client,
    cluster_of,
    create_pod,
    pod_manifest,
    pod_waiting_reason,
    wait_for,
)

from kubesim_images.clock import now_ns

NODE = "/api/v1/nodes/kubesim-node"
BIG = "example.com/big:v1"


def _disk(capacity: str, other: str) -> dict[str, Any]:
    return {
        "node": {"bandwidth": "unlimited", "imageFs": {"capacity": capacity, "otherUsage": other}},
        "registry": {"images": [{"name": BIG, "layers": [{"size": "200Mi"}]}]},
    }


async def _node(client: Client) -> dict[str, Any]:
    resp = await client.get(NODE)
    assert resp.status == 200
    return await resp.json()


def _condition(node: dict[str, Any], kind: str) -> tuple[str, str, str]:
    found = next(c for c in node["status"]["conditions"] if c["type"] == kind)
    return found["status"], found["reason"], found["message"]


class TestNodeStatus:
    """Capacity, allocatable and DiskPressure follow the model."""

    async def test_defaults(self, client: Client) -> None:
        node = await _node(client)
        assert node["status"]["capacity"]["ephemeral-storage"] == "100Gi"
        assert node["status"]["allocatable"]["ephemeral-storage"] == "90Gi"
        assert _condition(node, "DiskPressure") == (
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        )

    async def test_pressure_under_15_percent_available(self, api: Any) -> None:
        # 1000 MiB with 860 used by others and the 1 MiB pause image: 139 MiB (13.9 %) free.
        client = await api(**_disk("1000Mi", "860Mi"))
        node = await _node(client)
        assert node["status"]["capacity"]["ephemeral-storage"] == "1000Mi"
        assert node["status"]["allocatable"]["ephemeral-storage"] == "900Mi"
        assert _condition(node, "DiskPressure") == (
            "True",
            "KubeletHasDiskPressure",
            "kubelet has disk pressure",
        )


class TestNodeEvents:
    """Image GC's events name the node, as the kubelet's nodeRef does."""

    async def test_free_disk_space_failed_is_a_node_event(self, api: Any) -> None:
        client = await api(**_disk("1000Mi", "900Mi"))
        cluster = cluster_of(client)
        run = cluster.node.gc.collect(now_ns())  # what the 5-minute loop does
        assert run is not None
        assert run.error is not None
        selector = "involvedObject.kind=Node,involvedObject.name=kubesim-node"
        resp = await client.get("/api/v1/events", params={"fieldSelector": selector})
        (event,) = (await resp.json())["items"]
        assert event["reason"] == "FreeDiskSpaceFailed"
        assert event["type"] == "Warning"
        assert event["message"] == run.error
        assert event["metadata"]["namespace"] == "default"
        assert event["involvedObject"] == {
            "kind": "Node",
            "name": "kubesim-node",
            "uid": "kubesim-node",
            "apiVersion": "v1",
        }


class TestFullDisk:
    """A pull that does not fit: containerd's error, then back-off."""

    async def test_no_space_left_on_device(self, api: Any) -> None:
        client = await api(**_disk("1000Mi", "900Mi"))
        await create_pod(client, pod_manifest("big", BIG))

        async def failed() -> list[str]:
            resp = await client.get(
                "/api/v1/namespaces/default/events",
                params={"fieldSelector": "involvedObject.name=big,reason=Failed"},
            )
            return [
                e["message"]
                for e in (await resp.json())["items"]
                if e["message"].startswith("Failed to pull")
            ]

        (message,) = await wait_for(failed)
        assert message.startswith(
            f'Failed to pull image "{BIG}": failed to pull and unpack image "{BIG}": '
            "failed to copy: write /var/lib/containerd/io.containerd.content.v1.content/ingest/"
        )
        assert message.endswith("/data: no space left on device")
        assert (await pod_waiting_reason(client, "big"))[0] in ("ErrImagePull", "ImagePullBackOff")
        assert cluster_of(client).node.store.usage < 1000 * MI


class TestDebugGC:
    """`/debug/gc`: the policy, the filesystem, totals and the last runs, newest first."""

    async def test_after_a_run(self, api: Any) -> None:
        client = await api(
            **_disk("1000Mi", "900Mi"),
            kubelet={"imageGCHighThresholdPercent": 90, "imageMaximumGCAge": "1h"},
        )
        cluster_of(client).node.gc.collect(now_ns())
        doc = await (await client.get("/debug/gc")).json()
        assert doc["policy"] == {
            "imageGCHighThresholdPercent": 90,
            "imageGCLowThresholdPercent": 80,
            "imageMinimumGCAge": "2m0s",
            "imageMaximumGCAge": "1h0m0s",
            "enabled": True,
        }
        assert doc["imageFs"]["capacity"] == 1000 * MI
        assert doc["imageFs"]["used"] + doc["imageFs"]["available"] == 1000 * MI
        assert (doc["runs"], doc["imagesGarbageCollected"], doc["rePulls"]) == (1, 0, 0)
        (run,) = doc["lastRuns"]
        assert run["usagePercent"] == 91  # 900 MiB and the pause image
        assert run["removed"] == []  # pause is pinned
        assert run["error"].startswith("Failed to garbage collect required amount of images.")
