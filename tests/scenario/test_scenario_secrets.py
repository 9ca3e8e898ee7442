"""Pull secrets in scenario files: private images need a matching credential, as on a node."""

from __future__ import annotations

import pytest
from simkit import events, image, pod, ready_at, scenario, simulate

from kubesim_images.errors import ConfigError
from kubesim_images.scenario.model import load_document

PRIVATE = "registry.example.com/team/private:v1"
ROBOT = {"auths": {"registry.example.com": {"username": "robot", "password": "s3cret"}}}


def _private_image():
    spec = image(PRIVATE, 1)
    spec["auth"] = {"username": "robot", "password": "s3cret"}
    return spec


def _with_secrets(manifest, *names):
    manifest["spec"]["imagePullSecrets"] = [{"name": n} for n in names]
    return manifest


class TestPodSecrets:
    def test_only_the_pod_naming_a_matching_secret_gets_the_image(self):
        # One node each: on a shared node the image, once pulled, would be "already present"
        # for every pod, as on a real kubelet (without KubeletEnsureSecretPulledImages).
        result = simulate(
            {
                "duration": "15s",
                "nodes": {"count": 4},
                "secrets": [
                    {"name": "regcred", "dockerConfig": ROBOT},
                    {
                        "name": "wrong",
                        "dockerConfig": {
                            "auths": {
                                "registry.example.com": {"username": "robot", "password": "no"}
                            }
                        },
                    },
                ],
                "registry": {"images": [_private_image()]},
                "workload": [
                    {"pod": _with_secrets(pod("good", PRIVATE), "regcred")},
                    {"pod": pod("none", PRIVATE)},
                    {"pod": _with_secrets(pod("bad", PRIVATE), "wrong")},
                    {"pod": _with_secrets(pod("missing", PRIVATE), "not-there")},
                ],
            }
        )
        assert ready_at(result) == {"good-0": 0.0, "none-0": None, "bad-0": None, "missing-0": None}
        failed = [m for _, _, m in events(result, "none-0", "Failed")]
        assert any("pull access denied" in m for m in failed)

    def test_each_matching_credential_is_tried_in_turn(self):
        result = simulate(
            {
                "secrets": [
                    {
                        "name": "wrong",
                        "dockerConfig": {
                            "auths": {
                                "registry.example.com": {"username": "robot", "password": "no"}
                            }
                        },
                    },
                    {"name": "regcred", "dockerConfig": ROBOT},
                ],
                "registry": {"images": [_private_image()]},
                "workload": [{"pod": _with_secrets(pod("p", PRIVATE), "wrong", "regcred")}],
            }
        )
        assert ready_at(result) == {"p-0": 0.0}

    def test_the_node_docker_config_serves_every_pod(self):
        result = simulate(
            {
                "nodes": {"count": 2, "dockerConfig": ROBOT},
                "registry": {"images": [_private_image()]},
                "workload": [{"replicas": 2, "pod": pod("p", PRIVATE)}],
            }
        )
        assert ready_at(result) == {"p-0": 0.0, "p-1": 0.0}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"secrets": [{"dockerConfig": ROBOT}]}, "spec.secrets[0].name: required"),
        (
            {
                "secrets": [
                    {"name": "a", "dockerConfig": ROBOT},
                    {"name": "a", "dockerConfig": ROBOT},
                ]
            },
            "spec.secrets[1].name: duplicate secret default/a",
        ),
        (
            {"secrets": [{"name": "a", "dockerConfig": {"auths": {"x.io": {"auth": "%%%"}}}}]},
            "spec.secrets[0].dockerConfig.auths.x.io: auth is not valid base64",
        ),
        ({"nodes": {"dockerConfig": "nope"}}, "spec.nodes.dockerConfig: must be a mapping"),
    ],
)
def test_invalid_secrets_name_the_field(spec, message):
    with pytest.raises(ConfigError) as info:
        load_document(scenario(spec), source="f.yaml")
    assert message in str(info.value)


def test_on_a_shared_node_a_pulled_private_image_is_present_for_every_pod():
    """The kubelet's default (no KubeletEnsureSecretPulledImages): IfNotPresent finds it."""
    result = simulate(
        {
            "duration": "15s",
            "secrets": [{"name": "regcred", "dockerConfig": ROBOT}],
            "registry": {"images": [_private_image()]},
            "workload": [
                {"pod": _with_secrets(pod("owner", PRIVATE), "regcred")},
                {"at": "1s", "pod": pod("other", PRIVATE)},
            ],
        }
    )
    assert ready_at(result) == {"owner-0": 0.0, "other-0": 1.0}
    assert [r for _, r, _ in events(result, "other-0")] == ["Pulled"]
