"""`scenario run --real-time` with `registry: {type: oci}`: real pulls, per-node downlinks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from ocikit import Seeded

from kubesim_images.cli import main
from kubesim_images.clock import run_virtual
from kubesim_images.errors import ConfigError
from kubesim_images.oci.downlink import Downlink
from kubesim_images.scenario.model import load_document

MI = 1 << 20


def test_downlink_paces_bytes_at_its_rate() -> None:
    """1 MiB/s, starting empty: 1 MiB, then 0.5 MiB, take 1 s and 0.5 s more; after an idle
    second the bucket holds a quarter of a second of the link (its cap), no more."""

    async def main_() -> list[float]:
        link = Downlink(MI)
        loop = asyncio.get_running_loop()
        await link.consume(MI)  # all of it at 1 MiB/s: a new link has no burst
        first = loop.time()
        await link.consume(MI // 2)
        second = loop.time()
        await asyncio.sleep(1)  # idle: the bucket refills to its cap, 0.25 MiB
        await link.consume(MI // 2)  # 0.25 MiB from the bucket, 0.25 MiB at 1 MiB/s
        return [first, second, loop.time()]

    assert run_virtual(main_()) == [1.0, 1.5, 2.75]


def _scenario(tmp_path: Path, host: str) -> Path:
    doc = {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "Scenario",
        "metadata": {"name": "real"},
        "spec": {
            "duration": "60s",
            "nodes": {"count": 2, "bandwidth": "64Mi"},
            "registry": {"type": "oci", "platform": "linux/amd64"},
            "kubelet": {"serializeImagePulls": False},
            "workload": [
                {
                    "at": "0s",
                    "replicas": 2,
                    "pod": {
                        "metadata": {"name": "web"},
                        "spec": {"containers": [{"name": "c", "image": f"{host}/demo/big:v1"}]},
                    },
                }
            ],
        },
    }
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_needs_real_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _scenario(tmp_path, "127.0.0.1:5000")
    assert main(["scenario", "run", str(path)]) == 2
    assert "registry type oci pulls real images (variants: default): run it with --real-time" in (
        capsys.readouterr().err
    )


@pytest.mark.integration
def test_two_nodes_pull_for_real(
    seeded: Seeded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _scenario(tmp_path, seeded.open.host)
    assert main(["scenario", "run", str(path), "--real-time", "-o", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    [variant] = document["variants"]
    summary = variant["summary"]
    assert summary["pods"] == summary["podsReady"] == 2
    manifest = json.loads(
        (seeded.layout.root / "blobs/sha256" / seeded.images["big"]["digest"][7:]).read_bytes()
    )
    per_node = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    # Each node has its own store, so each fetches the whole image once.
    assert summary["bytesPulled"] == 2 * per_node
    registry = summary["registry"]
    assert registry["bytes"] == 2 * per_node
    assert registry["statusCodes"]["200"] == registry["requests"]
    # Per node: the manifest, the config and two layers.
    assert registry["requests"] == 2 * 4
    assert registry["retries"] == 0
    pulled = [e for e in variant["events"] if e["reason"] == "Pulled"]
    assert len(pulled) == 2


@pytest.mark.integration
@pytest.mark.parametrize("store", ["keep", "discard"])
def test_pods_of_one_image_on_one_node_all_start(
    seeded: Seeded, tmp_path: Path, capsys: pytest.CaptureFixture[str], store: str
) -> None:
    """Parallel pulls of one image on one node share its blobs, whether the store keeps them
    or not: every pod starts, no pull fails (the race itself is made certain in
    test_backend; this is the whole path a user runs)."""
    doc = yaml.safe_load(_scenario(tmp_path, seeded.open.host).read_text())
    doc["spec"]["nodes"] = {"count": 1}
    doc["spec"]["registry"]["store"] = store
    doc["spec"]["kubelet"]["maxParallelImagePulls"] = 4
    doc["spec"]["workload"][0]["replicas"] = 4
    path = tmp_path / "one-node.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["scenario", "run", str(path), "--real-time", "-o", "json"]) == 0
    [variant] = json.loads(capsys.readouterr().out)["variants"]
    assert variant["summary"]["pods"] == variant["summary"]["podsReady"] == 4
    assert variant["summary"]["failedPulls"] == 0
    assert not [e for e in variant["events"] if e["type"] == "Warning"]


@pytest.mark.parametrize(
    ("registry", "nodes", "expected"),
    [
        ({"type": "oci", "platform": "linux/amd64"}, {"platform": "linux/arm64"}, "linux/arm64/v8"),
        ({"type": "oci", "platform": "linux/amd64"}, {}, "linux/amd64"),
        ({"type": "oci"}, {}, None),
    ],
)
def test_node_pool_platform(
    registry: dict[str, str], nodes: dict[str, str], expected: str | None
) -> None:
    doc = {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "Scenario",
        "metadata": {"name": "p"},
        "spec": {"registry": registry, "nodes": nodes, "workload": []},
    }
    [variant] = load_document(doc, source="p.yaml").variants
    assert variant.oci is not None
    platform = variant.platform(variant.pools[0])  # the pool's, else the registry's
    assert (str(platform) if platform else None) == expected


def test_node_platform_needs_a_real_registry() -> None:
    doc = {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "Scenario",
        "metadata": {"name": "p"},
        "spec": {"nodes": {"platform": "linux/arm64"}, "workload": []},
    }
    with pytest.raises(ConfigError) as caught:
        load_document(doc, source="p.yaml")
    assert str(caught.value) == "p.yaml: spec.nodes.platform: only with registry type oci"
