"""The daemon's nodes: `node.count` and `nodePools`, read by the scenario files' pool reader."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim_images.daemon.config import parse_config
from kubesim_images.errors import ConfigError
from kubesim_images.oci.media import Platform


def _config(**doc: Any) -> Any:
    return parse_config(doc, source="d.yaml")


def test_one_node_keeps_its_name_and_a_count_numbers_them() -> None:
    assert _config().pools[0].node_names() == ["kubesim-node"]
    assert _config(node={"count": 3}).pools[0].node_names() == [
        "kubesim-node-0",
        "kubesim-node-1",
        "kubesim-node-2",
    ]
    assert _config(node={"name": "edge", "count": 1}).node_name == "edge"


def test_pools_have_their_own_bandwidth_labels_preloads_and_kubelet() -> None:
    config = _config(
        kubelet={"registryPullQPS": 2},
        nodePools=[
            {"name": "small", "count": 2, "bandwidth": "100Mbps", "labels": {"size": "s"}},
            {
                "name": "big",
                "count": 1,
                "bandwidth": "10Gbps",
                "preloadedImages": ["nginx:1.27"],
                "kubelet": {"serializeImagePulls": False, "maxParallelImagePulls": 4},
            },
        ],
    )
    small, big = config.pools
    assert small.node_names() == ["small-0", "small-1"]
    assert big.node_names() == ["big-0"]  # in a list, a pool of one is numbered too
    assert small.bandwidth == 100e6 / 8
    assert small.labels == {"size": "s"}
    assert [str(i.ref) for i in small.preloaded] == ["registry.k8s.io/pause:3.10"]
    assert [str(i.ref) for i in big.preloaded] == ["docker.io/library/nginx:1.27"]
    assert (small.kubelet.pull_concurrency, big.kubelet.pull_concurrency) == (1, 4)
    assert small.kubelet.registry_pull_qps == big.kubelet.registry_pull_qps == 2
    assert config.node_count == 3


def test_a_pool_pulls_its_own_platform_from_a_real_registry() -> None:
    config = _config(
        registry={"type": "oci", "platform": "linux/amd64"},
        nodePools=[{"name": "arm", "platform": "linux/arm64/v8"}, {"name": "x86"}],
    )
    arm, x86 = config.pools
    assert arm.platform == Platform.parse("linux/arm64/v8")
    assert x86.platform is None  # the registry's: linux/amd64
    assert arm.preloaded == x86.preloaded == ()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"node": {}, "nodePools": [{"name": "a"}]},
            "d.yaml: nodePools: give node (one pool) or nodePools, not both",
        ),
        ({"node": {"count": 0}}, "d.yaml: node.count: must be"),
        ({"node": {"count": 10_001}}, "d.yaml: node.count: must be"),
        ({"node": {"name": "Big_Node"}}, "d.yaml: node.name: must be a DNS label"),
        (
            {
                "nodePools": [
                    {
                        "name": "a",
                        "kubelet": {"serializeImagePulls": True, "maxParallelImagePulls": 2},
                    }
                ]
            },
            (
                "d.yaml: nodePools[0].kubelet: invalid configuration: maxParallelImagePulls cannot "
                "be larger than 1 unless SerializeImagePulls (--serialize-image-pulls) is set to "
                "false"
            ),
        ),
        ({"node": {"platform": "linux/arm64"}}, "d.yaml: node.platform: only with registry"),
    ],
)
def test_refusals_name_the_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(**doc)
    assert str(caught.value).startswith(message)
