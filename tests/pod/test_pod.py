"""Pod parsing, validation with the API server's field paths, and defaulting at creation."""

from __future__ import annotations

import pytest

from kubesim_images.pod import PodInvalidError, pod_from_manifest
from kubesim_images.policy import (
    Decision,
    PullPolicy,
    decide,
    default_pull_policy,
    effective_policy,
)


def _causes(manifest):
    with pytest.raises(PodInvalidError) as info:
        pod_from_manifest(manifest)
    return [(c.field, c.reason) for c in info.value.causes]


class TestDefaulting:
    """SetDefaults_Container: Always for latest written or implied, else IfNotPresent."""

    @pytest.mark.parametrize(
        ("image", "policy"),
        [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
            ("nginx:latest@sha256:" + "a" * 64, "Always"),
            ("registry.example.com:5000/team/app", "Always"),
            ("Not A Reference", "IfNotPresent"),
        ],
    )
    def test_default_policy(self, image, policy):
        assert default_pull_policy(image) == policy

    def test_written_policy_is_kept_and_admission_overrides(self):
        assert effective_policy("nginx", PullPolicy.NEVER) == "Never"
        assert effective_policy("nginx:1", PullPolicy.NEVER, always_pull_images=True) == "Always"

    def test_pod_stores_the_defaulted_policy(self):
        pod = pod_from_manifest(
            {
                "metadata": {"name": "p"},
                "spec": {
                    "initContainers": [{"name": "i", "image": "busybox:1.36"}],
                    "containers": [
                        {"name": "a", "image": "nginx"},
                        {"name": "b", "image": "nginx", "imagePullPolicy": "Never"},
                    ],
                },
            }
        )
        assert [c.pull_policy for c in pod.all_containers()] == ["IfNotPresent", "Always", "Never"]
        assert [c.init for c in pod.all_containers()] == [True, False, False]


class TestDecision:
    @pytest.mark.parametrize(
        ("policy", "present", "decision"),
        [
            ("Always", True, Decision.PULL),
            ("Always", False, Decision.PULL),
            ("IfNotPresent", True, Decision.ALREADY_PRESENT),
            ("IfNotPresent", False, Decision.PULL),
            ("Never", True, Decision.ALREADY_PRESENT),
            ("Never", False, Decision.NEVER_PULL_ERROR),
        ],
    )
    def test_should_pull(self, policy, present, decision):
        assert decide(PullPolicy(policy), present) is decision


class TestValidation:
    def test_no_containers(self):
        assert _causes({"metadata": {"name": "p"}, "spec": {"containers": []}}) == [
            ("spec.containers", "FieldValueRequired")
        ]

    def test_bad_names_policy_and_missing_image(self):
        causes = _causes(
            {
                "metadata": {"name": "Bad_Name"},
                "spec": {
                    "containers": [
                        {"name": "UPPER", "image": "nginx"},
                        {"name": "ok", "image": "nginx", "imagePullPolicy": "Sometimes"},
                        {"name": "ok", "image": ""},
                    ]
                },
            }
        )
        assert causes == [
            ("metadata.name", "FieldValueInvalid"),
            ("spec.containers[0].name", "FieldValueInvalid"),
            ("spec.containers[1].imagePullPolicy", "FieldValueNotSupported"),
            ("spec.containers[2].name", "FieldValueDuplicate"),
            ("spec.containers[2].image", "FieldValueRequired"),
        ]

    def test_message_reads_like_the_api_servers(self):
        with pytest.raises(PodInvalidError) as info:
            pod_from_manifest(
                {
                    "metadata": {"name": "p"},
                    "spec": {
                        "containers": [
                            {"name": "c", "image": "nginx", "imagePullPolicy": "Sometimes"}
                        ]
                    },
                }
            )
        assert str(info.value) == (
            'Pod "p" is invalid: spec.containers[0].imagePullPolicy: Unsupported value: '
            '"Sometimes": supported values: "Always", "IfNotPresent", "Never"'
        )

    def test_missing_name_and_spec(self):
        assert _causes({"metadata": {}}) == [
            ("metadata.name", "FieldValueRequired"),
            ("spec.containers", "FieldValueRequired"),
        ]

    def test_pull_secrets_and_extra_secrets(self):
        pod = pod_from_manifest(
            {
                "metadata": {"name": "p", "namespace": "team"},
                "spec": {
                    "containers": [{"name": "c", "image": "nginx"}],
                    "imagePullSecrets": [{"name": "a"}],
                },
            },
            extra_pull_secrets=["b", "a"],
        )
        assert (pod.namespace, pod.image_pull_secrets) == ("team", ("a", "b"))


class TestSidecars:
    """restartPolicy on containers, as the 1.32 API server validates it."""

    def test_an_init_container_with_restart_policy_always_is_a_sidecar(self):
        pod = pod_from_manifest(
            {
                "metadata": {"name": "p"},
                "spec": {
                    "initContainers": [
                        {"name": "mesh", "image": "envoy:1", "restartPolicy": "Always"},
                        {"name": "migrate", "image": "busybox:1.36"},
                    ],
                    "containers": [{"name": "app", "image": "nginx:1"}],
                },
            }
        )
        assert [(c.name, c.init, c.sidecar) for c in pod.all_containers()] == [
            ("mesh", True, True),
            ("migrate", True, False),
            ("app", False, False),
        ]

    def test_only_always_and_only_on_init_containers(self):
        manifest = {
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "i", "image": "a:1", "restartPolicy": "Never"}],
                "containers": [{"name": "c", "image": "b:1", "restartPolicy": "Always"}],
            },
        }
        with pytest.raises(PodInvalidError) as info:
            pod_from_manifest(manifest)
        assert [str(c) for c in info.value.causes] == [
            (
                'spec.initContainers[0].restartPolicy: Unsupported value: "Never": '
                'supported values: "Always"'
            ),
            "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
        ]
