"""The fault matrix: every fault the proxy injects, through the kubelet logic end to end.

One real-time scenario, one node and one image repository per fault, all pulling at once from
the real registry through `kubesim-images fault-proxy`. Each faulted rule fires exactly as
often as it takes to fail one pull attempt (the client itself retries a 429 three times and
resumes a cut blob five times), so every pod must show the kubelet's reason with containerd's
text, a back-off, and a clean retry once the fault has stopped; afterwards every blob in every
node's content store is re-hashed and no partial download or image is left.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from faultkit import FaultProxyProcess, audit_store
from ocikit import Seeded, skopeo_copy

from kubesim_images.contentstore import ContentStore
from kubesim_images.scenario.model import load_document
from kubesim_images.scenario.report import to_json
from kubesim_images.scenario.runner import run_scenario

pytestmark = pytest.mark.integration

# fault -> (kubelet reason of the failed attempt, containerd's words in the message)
EXPECTED = {
    "s503": ("RegistryUnavailable", "503 Service Unavailable"),
    "s500": ("ErrImagePull", "500 Internal Server Error"),
    "throttle": ("ErrImagePull", "429 Too Many Requests"),
    "reset": ("ErrImagePull", "read: connection reset by peer"),
    "truncate": ("ErrImagePull", "unexpected EOF"),
    "corrupt": ("ErrImagePull", "unexpected commit digest"),
    "refuse": ("RegistryUnavailable", "connect: connection refused"),
}


def _rules(layer: str) -> dict[str, Any]:
    blob = f"/blobs/{layer}$"
    return {
        "seed": 1,
        "faults": [
            {"name": "s503", "path": "^/v2/fault/s503/manifests/", "fault": "status",
             "status": 503, "times": 1},
            {"name": "s500", "path": "^/v2/fault/s500/manifests/", "fault": "status",
             "status": 500, "times": 1},
            # The client honours Retry-After three times; the fourth 429 fails the attempt.
            {"name": "throttle", "path": "^/v2/fault/throttle/manifests/", "fault": "throttle",
             "retryAfter": "0", "times": 4},
            # Resumed with Range five times; the sixth cut fails the attempt (8 KiB each time,
            # 48 KiB in all, so the 256 KiB layer never completes while the fault lasts).
            {"name": "reset", "path": f"^/v2/fault/reset{blob}", "fault": "reset",
             "after": "8Ki", "times": 6},
            {"name": "truncate", "path": f"^/v2/fault/truncate{blob}", "fault": "truncate",
             "after": "8Ki", "times": 6},
            {"name": "corrupt", "path": f"^/v2/fault/corrupt{blob}", "fault": "corrupt",
             "after": 1000, "times": 1},
            {"name": "slow", "path": f"^/v2/fault/slow{blob}", "fault": "slow", "rate": "1Mi"},
        ],
    }  # fmt: skip


def _scenario(images: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "Scenario",
        "metadata": {"name": "fault-matrix"},
        "spec": {
            "duration": "120s",
            "nodes": {"count": len(images)},
            "registry": {"type": "oci", "platform": "linux/amd64"},
            "sync": {"errorRequeue": "1s", "jitterFactor": 0},
            "workload": [
                {
                    "at": "0s",
                    "pod": {
                        "metadata": {"name": image.split("/")[-1].split(":")[0]},
                        "spec": {"containers": [{"name": "c", "image": image}]},
                    },
                }
                for image in images
            ],
        },
    }


def test_every_fault_fails_backs_off_and_retries_clean(seeded: Seeded, tmp_path: Path) -> None:
    layout = seeded.layout
    image = layout.image([{"etc/f": b"fault\n"}, {"data/bin": os.urandom(256 << 10)}])
    layout.tag("faulty", image)
    manifest = layout.root / "blobs/sha256" / image["digest"].removeprefix("sha256:")

    layer = json.loads(manifest.read_bytes())["layers"][1]["digest"]
    names = [*EXPECTED, "slow"]
    for name in names:
        skopeo_copy(layout, "faulty", f"{seeded.open.host}/fault/{name}:v1")

    matrix = FaultProxyProcess(tmp_path, seeded.open.host, _rules(layer), "fault_proxy_listening")
    # Refused connections need a listener of their own, closed from its start: the kubelet's
    # first attempt (within the 9.5 s window) is refused, its retry after the 10 s back-off
    # is not, whenever in the window the first attempt came.
    refusing = FaultProxyProcess(
        tmp_path,
        seeded.open.host,
        {"faults": [{"name": "refuse", "fault": "refuse", "duration": "9.5s"}]},
        "fault_injected",
    )
    try:
        images = [
            f"{(refusing if name == 'refuse' else matrix).host}/fault/{name}:v1" for name in names
        ]
        scenario = load_document(_scenario(images), source="fault-matrix.yaml")
        result = run_scenario(scenario, real_time=True, workdir=tmp_path / "stores")
    finally:
        matrix.stop()
        refusing.stop()
    [variant] = to_json(result)["variants"]
    assert variant["summary"]["podsReady"] == len(names), variant["events"]

    for index, name in enumerate(names):
        events = [e for e in variant["events"] if e["pod"] == f"{name}-0"]
        reasons = [e["reason"] for e in events]
        [pod] = [p for p in variant["pods"] if p["name"] == f"{name}-0"]
        assert pod["node"] == f"node-{index}"
        assert reasons[-1] == "Pulled", events
        if name == "slow":  # slower, not broken: one attempt, nothing failed
            assert pod["containers"][0]["pullAttempts"] == 1
            assert "Failed" not in reasons
            continue
        reason, words = EXPECTED[name]
        failed = [e["message"] for e in events if e["reason"] == "Failed"]
        assert f"Error: {reason}" in failed, events
        assert any(words in m for m in failed if m.startswith("Failed to pull image")), failed
        assert "BackOff" in reasons
        assert pod["containers"][0]["pullAttempts"] == 2, events

    # Each rule fired as often as planned, one log line each.
    planned = {"s503": 1, "s500": 1, "throttle": 4, "reset": 6, "truncate": 6, "corrupt": 1}
    for rule, times in planned.items():
        assert len(matrix.injected(rule)) == times, rule
    assert len(matrix.injected("slow")) == 1
    assert len(refusing.injected("refuse")) == 1

    # 0 corrupt or partial images: every blob re-hashed, nothing half-downloaded left.
    for index, name in enumerate(names):
        root = tmp_path / "stores" / "default" / f"node-{index}"
        count, problems = audit_store(root)
        assert problems == []
        assert count == 4, name  # manifest, config, two layers
        assert list((root / "ingest").iterdir()) == []
        store = ContentStore(root)
        try:
            [stored] = store.images()
            assert stored.repo_tags == (images[index],)
            assert all(store.has_blob(d) for d, _ in stored.layers)
        finally:
            store.close()
