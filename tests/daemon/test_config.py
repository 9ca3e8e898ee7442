"""The daemon's config file: the embedded default, the bundled catalogue, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog
import yaml

from kubesim_images.cli import EXIT_INVALID, main
from kubesim_images.daemon.catalogue import bundled_images
from kubesim_images.daemon.config import load_config, parse_config
from kubesim_images.errors import ConfigError
from kubesim_images.reference import parse_normalized
from kubesim_images.scenario.model import load_document

CONFIG_DIR = Path(__file__).parents[2] / "config"


def test_embedded_default_is_the_kubelets_default():
    config = load_config(None)
    assert config.node_name == "kubesim-node"
    assert config.kubelet.pull_concurrency == 1
    assert (config.kubelet.registry_pull_qps, config.kubelet.registry_burst) == (5.0, 10)
    assert config.registry.latency == 0.2
    assert [str(i.ref) for i in config.preloaded] == ["registry.k8s.io/pause:3.10"]
    nginx = config.registry.catalogue.resolve(parse_normalized("nginx:1.27"))
    assert nginx is not None
    assert nginx.size > 50 * 2**20


def test_config_daemon_yaml_is_exactly_the_embedded_default():
    embedded = Path(__file__).parents[2] / "kubesim_images" / "data" / "daemon.yaml"
    assert (CONFIG_DIR / "daemon.yaml").read_bytes() == embedded.read_bytes()
    private = load_config(None).registry.catalogue.resolve(
        parse_normalized("registry.example.com/team/private:v1")
    )
    assert private is not None
    assert private.auth == ("robot", "s3cret")  # the README's walk-through pulls it


def test_every_fault_of_the_default_config_names_a_catalogue_image():
    """A fault on an image the registry does not serve never fires: the pull fails NotFound."""
    registry = load_config(None).registry
    assert registry.faults
    for fault in registry.faults:
        assert fault.image is not None
        assert registry.catalogue.resolve(fault.image) is not None, str(fault.image)


def test_bundled_images_share_base_layers_like_the_real_ones():
    by_name = {str(i.ref): i for i in bundled_images()}
    nginx = by_name["docker.io/library/nginx:1.27"]
    redis = by_name["docker.io/library/redis:7.4"]
    assert nginx.layers[0] == redis.layers[0]
    assert nginx.config_digest != redis.config_digest


def test_the_commented_example_and_a_real_kubelet_configuration_load(tmp_path):
    example = load_config(CONFIG_DIR / "daemon.yaml")
    assert example.registry.catalogue.resolve(
        parse_normalized("registry.example.com/team/private:v1")
    ).auth == ("robot", "s3cret")
    document = yaml.safe_load((CONFIG_DIR / "daemon.yaml").read_text())
    document.pop("kubelet")
    document["kubeletConfigFile"] = str(CONFIG_DIR / "kubelet-config.yaml")
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(document))
    config = load_config(path)
    assert config.kubelet.pull_concurrency == 3
    assert config.kubelet.registry_pull_qps == 10


def test_inline_kubelet_fields_override_the_file(tmp_path):
    (tmp_path / "kubelet.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                "serializeImagePulls": False,
                "maxParallelImagePulls": 4,
            }
        )
    )
    (tmp_path / "d.yaml").write_text(
        yaml.safe_dump(
            {"kubeletConfigFile": "kubelet.yaml", "kubelet": {"maxParallelImagePulls": 2}}
        )
    )
    assert load_config(tmp_path / "d.yaml").kubelet.pull_concurrency == 2


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"kubelet": {"maxParallelImagePulls": 0}},
            "kubelet: invalid configuration: maxParallelImagePulls 0 must be a positive number",
        ),
        (
            {"kubelet": {"serializeImagePulls": True, "maxParallelImagePulls": 2}},
            "maxParallelImagePulls cannot be larger than 1 unless SerializeImagePulls",
        ),
        (
            {"node": {"preloadedImages": ["example.com/nope:v1"]}},
            "node.preloadedImages[0]: 'example.com/nope:v1' is not in the registry's catalogue",
        ),
        (
            {"registry": {"type": "quay"}},
            "registry.type: unsupported registry type 'quay' (simulated, oci)",
        ),
        ({"registry": {"type": "oci", "latency": "1s"}}, "registry.latency: unknown field"),
        (
            {"registry": {"type": "oci"}, "node": {"preloadedImages": ["pause:3.10"]}},
            "node.preloadedImages[0]: 'pause:3.10' is not in the registry's catalogue",
        ),
        ({"nodes": {}}, "nodes: unknown field"),
        ({"api": {"maxBodyBytes": "lots"}}, "api.maxBodyBytes: invalid size"),
        ({"api": {"maxConnections": 0}}, "api.maxConnections: must be a positive integer"),
        ({"api": {"headerTimeout": "0s"}}, "api.headerTimeout: must be a positive duration"),
        ({"api": {"keepAliveTimeout": "soon"}}, "api.keepAliveTimeout: "),
        ({"sync": {"errorRequeue": "0s"}}, "sync.errorRequeue: must be positive"),
    ],
)
def test_refusals_name_the_field(document, message):
    with pytest.raises(ConfigError) as info:
        parse_config(document, source="d.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("d.yaml: ")


def test_unreadable_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("kubelet: [")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_connection_limits_default_and_override():
    default = parse_config({}, source="d.yaml").limits
    assert (default.max_connections, default.header_timeout) == (1000, 10.0)
    assert (default.body_timeout, default.keep_alive_timeout) == (60.0, 60.0)
    limits = parse_config(
        {"api": {"maxConnections": 20, "headerTimeout": "1s", "bodyTimeout": "2s"}},
        source="d.yaml",
    ).limits
    assert (limits.max_connections, limits.header_timeout, limits.body_timeout) == (20, 1.0, 2.0)


def test_a_zero_requeue_is_refused_with_the_scenarios_text():
    with pytest.raises(ConfigError) as daemon:
        parse_config({"sync": {"errorRequeue": "0s"}}, source="d.yaml")
    scenario = {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "Scenario",
        "metadata": {"name": "s"},
        "spec": {"sync": {"errorRequeue": "0s"}, "workload": []},
    }
    with pytest.raises(ConfigError) as file:
        load_document(scenario, source="s.yaml")
    assert str(daemon.value) == "d.yaml: sync.errorRequeue: must be positive"
    assert str(file.value) == "s.yaml: spec.sync.errorRequeue: must be positive"


def test_serve_refuses_a_zero_requeue_before_starting(tmp_path, capsys):
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump({"sync": {"errorRequeue": "0s"}}))
    saved = structlog.get_config()
    try:
        code = main(["serve", "--config", str(path), "--state-dir", str(tmp_path / "state")])
    finally:
        structlog.configure(**saved)
    assert code == EXIT_INVALID
    assert capsys.readouterr().err == f"error: {path}: sync.errorRequeue: must be positive\n"
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"imageFs": {"capacity": "0"}}, "node.imageFs.capacity: must be positive"),
        (
            {"imageFs": {"capacity": "1Gi", "otherUsage": "2Gi"}},
            "node.imageFs.otherUsage: must not exceed the capacity (1073741824 bytes)",
        ),
        ({"imageFs": {"size": "1Gi"}}, "node.imageFs.size: unknown field"),
        ({"sandboxImage": "Pause:3.10"}, "node.sandboxImage: 'Pause:3.10': invalid reference"),
    ],
)
def test_image_filesystem_refusals(node, message):
    with pytest.raises(ConfigError) as info:
        parse_config({"node": node}, source="d.yaml")
    assert message in str(info.value)


def test_image_filesystem_and_sandbox_image():
    config = parse_config(
        {
            "node": {
                "imageFs": {"capacity": "30Gi", "otherUsage": "5Gi"},
                "sandboxImage": "pause:3.9",
            }
        },
        source="d.yaml",
    )
    assert (config.image_fs.capacity, config.image_fs.other_usage) == (30 * 2**30, 5 * 2**30)
    assert config.sandbox_image == "docker.io/library/pause:3.9"
    default = parse_config({}, source="d.yaml")
    assert (default.image_fs.capacity, default.sandbox_image) == (
        100 * 2**30,
        "registry.k8s.io/pause:3.10",
    )
