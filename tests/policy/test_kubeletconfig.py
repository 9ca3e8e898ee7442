"""Tests for kubesim_images.kubeletconfig: defaulting and validation of KubeletConfiguration.

Defaulting is ``SetDefaults_KubeletConfiguration`` (pkg/kubelet/apis/config/v1beta1/defaults.go)
and validation ``ValidateKubeletConfiguration`` (pkg/kubelet/apis/config/validation); the error
texts below are copied from the kubelet's source, including the order in which the aggregated
``[a, b]`` message lists several errors.
"""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from kubesim_images.errors import ConfigError
from kubesim_images.kubeletconfig import (
    API_VERSION,
    KIND,
    KubeletConfig,
    load_kubelet_config,
    misspelt_fields,
)

MAX_PARALLEL_NOT_POSITIVE = (
    "invalid configuration: maxParallelImagePulls {} must be a positive number"
)
MAX_PARALLEL_NEEDS_PARALLEL = (
    "invalid configuration: maxParallelImagePulls cannot be larger than 1 unless "
    "SerializeImagePulls (--serialize-image-pulls) is set to false"
)
QPS_NEGATIVE = (
    "invalid configuration: registryPullQPS (--registry-qps) {} must not be a negative number"
)
BURST_NEGATIVE = (
    "invalid configuration: registryBurst (--registry-burst) {} must not be a negative number"
)
GC_HIGH_RANGE = (
    "invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) {} "
    "must be between 0 and 100, inclusive"
)
GC_LOW_RANGE = (
    "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {} "
    "must be between 0 and 100, inclusive"
)
GC_LOW_BELOW_HIGH = (
    "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {} "
    "must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {}"
)


def _refusal(data: dict[str, Any], **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_kubelet_config(data, **kwargs)
    return info.value


# --- defaulting -----------------------------------------------------------------------------


@pytest.mark.parametrize("data", [None, {}, {"apiVersion": API_VERSION, "kind": KIND}])
def test_empty_configuration_gets_the_kubelet_defaults(data: dict[str, Any] | None) -> None:
    config = load_kubelet_config(data)
    assert config == KubeletConfig()
    assert config.serialize_image_pulls is True
    assert config.max_parallel_image_pulls is None
    assert config.registry_pull_qps == 5
    assert config.registry_burst == 10
    assert config.image_gc_high_threshold_percent == 85
    assert config.image_gc_low_threshold_percent == 80
    assert config.image_minimum_gc_age == 120.0
    assert config.image_maximum_gc_age == 0.0


@pytest.mark.parametrize(
    ("max_parallel", "serialize"),
    [(None, True), (1, True), (2, False), (5, False)],
)
def test_serialize_image_pulls_defaults_from_max_parallel_image_pulls(
    max_parallel: int | None, serialize: bool
) -> None:
    data = {} if max_parallel is None else {"maxParallelImagePulls": max_parallel}
    config = load_kubelet_config(data)
    assert config.serialize_image_pulls is serialize
    assert config.max_parallel_image_pulls == max_parallel


@pytest.mark.parametrize("written", [True, False])
def test_serialize_image_pulls_as_written_wins(written: bool) -> None:
    assert load_kubelet_config({"serializeImagePulls": written}).serialize_image_pulls is written


@pytest.mark.parametrize(("written", "qps"), [(None, 5.0), (0, 0.0), (10, 10.0), (1, 1.0)])
def test_registry_pull_qps_defaults_to_5_and_keeps_0_as_unlimited(
    written: int | None, qps: float
) -> None:
    data = {} if written is None else {"registryPullQPS": written}
    assert load_kubelet_config(data).registry_pull_qps == qps


@pytest.mark.parametrize(("written", "burst"), [(None, 10), (0, 10), (1, 1), (25, 25)])
def test_registry_burst_zero_or_unset_becomes_10(written: int | None, burst: int) -> None:
    data = {} if written is None else {"registryBurst": written}
    assert load_kubelet_config(data).registry_burst == burst


def test_gc_settings_are_read() -> None:
    config = load_kubelet_config(
        {
            "imageGCHighThresholdPercent": 90,
            "imageGCLowThresholdPercent": 70,
            "imageMinimumGCAge": "5m",
            "imageMaximumGCAge": "1h30m",
        }
    )
    assert config.image_gc_high_threshold_percent == 90
    assert config.image_gc_low_threshold_percent == 70
    assert config.image_minimum_gc_age == 300.0
    assert config.image_maximum_gc_age == 5400.0


def test_unknown_fields_of_a_full_kubelet_configuration_are_ignored() -> None:
    config = load_kubelet_config(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "cgroupDriver": "systemd",
            "authentication": {"anonymous": {"enabled": False}},
            "maxParallelImagePulls": 3,
        }
    )
    assert config.pull_concurrency == 3


# --- pull_concurrency -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "concurrency"),
    [
        ({}, 1),
        ({"serializeImagePulls": True}, 1),
        ({"serializeImagePulls": True, "maxParallelImagePulls": 1}, 1),
        ({"maxParallelImagePulls": 1}, 1),
        ({"maxParallelImagePulls": 4}, 4),
        ({"serializeImagePulls": False, "maxParallelImagePulls": 4}, 4),
        ({"serializeImagePulls": False, "maxParallelImagePulls": 1}, 1),
        ({"serializeImagePulls": False}, None),
    ],
)
def test_pull_concurrency(data: dict[str, Any], concurrency: int | None) -> None:
    assert load_kubelet_config(data).pull_concurrency == concurrency


def test_pull_concurrency_of_a_constructed_config() -> None:
    assert KubeletConfig().pull_concurrency == 1
    assert KubeletConfig(serialize_image_pulls=False).pull_concurrency is None
    parallel = KubeletConfig(serialize_image_pulls=False, max_parallel_image_pulls=8)
    assert parallel.pull_concurrency == 8


# --- validation: the kubelet's own texts ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"maxParallelImagePulls": 0}, MAX_PARALLEL_NOT_POSITIVE.format(0)),
        ({"maxParallelImagePulls": -3}, MAX_PARALLEL_NOT_POSITIVE.format(-3)),
        (
            {"serializeImagePulls": False, "maxParallelImagePulls": 0},
            MAX_PARALLEL_NOT_POSITIVE.format(0),
        ),
        ({"serializeImagePulls": True, "maxParallelImagePulls": 2}, MAX_PARALLEL_NEEDS_PARALLEL),
        ({"serializeImagePulls": True, "maxParallelImagePulls": 10}, MAX_PARALLEL_NEEDS_PARALLEL),
        ({"registryPullQPS": -1}, QPS_NEGATIVE.format(-1)),
        ({"registryBurst": -1}, BURST_NEGATIVE.format(-1)),
        ({"registryBurst": -20}, BURST_NEGATIVE.format(-20)),
        (
            {"imageGCHighThresholdPercent": 101},
            GC_HIGH_RANGE.format(101),
        ),
        (
            {"imageGCLowThresholdPercent": -1},
            GC_LOW_RANGE.format(-1),
        ),
        (
            {"imageGCLowThresholdPercent": 90},
            GC_LOW_BELOW_HIGH.format(90, 85),
        ),
        (
            {"imageGCLowThresholdPercent": 80, "imageGCHighThresholdPercent": 80},
            GC_LOW_BELOW_HIGH.format(80, 80),
        ),
    ],
)
def test_single_validation_error_is_the_kubelet_text(data: dict[str, Any], message: str) -> None:
    error = _refusal(data)
    assert error.message == message
    assert str(error) == message


def test_gc_thresholds_at_the_bounds_are_valid() -> None:
    config = load_kubelet_config(
        {"imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 0}
    )
    assert (config.image_gc_high_threshold_percent, config.image_gc_low_threshold_percent) == (
        100,
        0,
    )


def test_several_errors_are_aggregated_in_the_kubelet_order() -> None:
    # ValidateKubeletConfiguration checks GC thresholds, then registryBurst, registryPullQPS,
    # then maxParallelImagePulls; utilerrors.NewAggregate renders "[a, b, ...]".
    error = _refusal(
        {
            "maxParallelImagePulls": 0,
            "registryPullQPS": -1,
            "registryBurst": -2,
            "imageGCHighThresholdPercent": 101,
        }
    )
    expected = [
        GC_HIGH_RANGE.format(101),
        BURST_NEGATIVE.format(-2),
        QPS_NEGATIVE.format(-1),
        MAX_PARALLEL_NOT_POSITIVE.format(0),
    ]
    assert error.message == "[" + ", ".join(expected) + "]"


def test_a_threshold_out_of_range_also_breaks_the_ordering_rule() -> None:
    error = _refusal({"imageGCHighThresholdPercent": -1})
    assert error.message == (f"[{GC_HIGH_RANGE.format(-1)}, {GC_LOW_BELOW_HIGH.format(80, -1)}]")


def test_validation_error_carries_the_given_path() -> None:
    error = _refusal({"maxParallelImagePulls": 0}, path="spec.kubelet")
    assert error.path == "spec.kubelet"
    assert str(error) == f"spec.kubelet: {MAX_PARALLEL_NOT_POSITIVE.format(0)}"


# --- refused values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"maxParallelImagePulls": "2"}, "maxParallelImagePulls"),
        ({"maxParallelImagePulls": True}, "maxParallelImagePulls"),
        ({"maxParallelImagePulls": 2.5}, "maxParallelImagePulls"),
        ({"serializeImagePulls": "yes"}, "serializeImagePulls"),
        ({"serializeImagePulls": 1}, "serializeImagePulls"),
        ({"registryPullQPS": "5"}, "registryPullQPS"),
        ({"registryPullQPS": False}, "registryPullQPS"),
        ({"registryBurst": "10"}, "registryBurst"),
        ({"imageGCHighThresholdPercent": 85.5}, "imageGCHighThresholdPercent"),
        ({"imageMinimumGCAge": "2 minutes"}, "imageMinimumGCAge"),
        ({"imageMaximumGCAge": "10"}, "imageMaximumGCAge"),
    ],
)
def test_wrongly_typed_fields_name_the_field(data: dict[str, Any], field: str) -> None:
    assert _refusal(data).path == field


def test_wrongly_typed_field_path_is_prefixed() -> None:
    error = _refusal({"registryBurst": "x"}, path="spec.kubelet")
    assert error.path == "spec.kubelet.registryBurst"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"apiVersion": "kubelet.config.k8s.io/v1"}, "apiVersion"),
        ({"kind": "KubeProxyConfiguration"}, "kind"),
    ],
)
def test_other_api_version_or_kind_is_refused(data: dict[str, Any], field: str) -> None:
    error = _refusal(data)
    assert error.path == field
    assert API_VERSION in error.message or KIND in error.message


class TestLenientDecoding:
    """A field spelled almost like one of ours is a typo the kubelet would ignore: say so."""

    def test_a_misspelt_field_is_logged_as_the_kubelets_lenient_decoding(self) -> None:
        with capture_logs() as logs:
            config = load_kubelet_config({"serialiseImagePulls": False}, path="spec.kubelet")
        assert config.serialize_image_pulls is True  # ignored, as the kubelet ignores it
        (warning,) = logs
        assert warning["log_level"] == "warning"
        assert warning["event"] == "Using lenient decoding as strict decoding failed"
        assert warning["err"] == 'strict decoding error: unknown field "serialiseImagePulls"'
        assert warning["field"] == "spec.kubelet.serialiseImagePulls"
        assert "did you mean serializeImagePulls?" in warning["hint"]

    def test_other_kubelet_fields_of_a_full_file_are_quiet(self) -> None:
        full = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "evictionHard": {"imagefs.available": "15%"},
            "eventBurst": 100,
            "imageServiceEndpoint": "unix:///run/containerd/containerd.sock",
            "registryBurst": 20,
        }
        with capture_logs() as logs:
            assert load_kubelet_config(full).registry_burst == 20
        assert logs == []

    @pytest.mark.parametrize(
        ("typo", "meant"),
        [
            ("maxParallelImagePull", "maxParallelImagePulls"),
            ("registryPullQps", "registryPullQPS"),
            ("imageMinimumGcAge", "imageMinimumGCAge"),
        ],
    )
    def test_near_misses_name_the_field_meant(self, typo: str, meant: str) -> None:
        assert misspelt_fields({typo: 1}) == [(typo, meant)]
