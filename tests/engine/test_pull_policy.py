"""Pull policy end to end: Never / IfNotPresent / Always, defaulting and admission."""

from __future__ import annotations

import pytest
from simkit import MI, events, image, pod, ready_at, simulate

from kubesim_images.errors import InvalidReferenceError
from kubesim_images.events import EventLog
from kubesim_images.kubeletconfig import KubeletConfig
from kubesim_images.node import Node
from kubesim_images.registry.catalogue import Catalogue
from kubesim_images.registry.simulated import SimulatedRegistry
from kubesim_images.store import ImageStore

APP = "example.com/app:v1"
LATEST = "example.com/app"


def _run(
    policy: str | None,
    *,
    preloaded: bool,
    img: str = APP,
    admission: bool = False,
    duration: str = "25s",
):
    spec = {
        "duration": duration,
        "nodes": {"bandwidth": "100Mi", "preloadedImages": [img] if preloaded else []},
        "registry": {"latency": "100ms", "images": [image(img, 100)]},
        "workload": [{"pod": pod("p", img, policy=policy)}],
    }
    if admission:
        spec["admission"] = {"alwaysPullImages": True}
    return simulate(spec)


class TestNever:
    def test_absent_image_waits_with_err_image_never_pull(self):
        result = _run("Never", preloaded=False)
        message = f'Container image "{APP}" is not present with pull policy of Never'
        assert events(result, "p-0", "ErrImageNeverPull") == [
            (0.0, "ErrImageNeverPull", message),
            (10.0, "ErrImageNeverPull", message),
            (20.0, "ErrImageNeverPull", message),
        ]
        status = result.pods[0].statuses[0]
        assert (status.reason, status.message, status.pull_attempts) == (
            "ErrImageNeverPull",
            message,
            0,
        )
        assert ready_at(result) == {"p-0": None}
        assert result.bytes_pulled == 0

    def test_present_image_runs_without_pulling(self):
        result = _run("Never", preloaded=True)
        assert events(result, "p-0") == [
            (0.0, "Pulled", f'Container image "{APP}" already present on machine')
        ]


class TestIfNotPresent:
    def test_present_means_no_pull(self):
        result = _run("IfNotPresent", preloaded=True)
        assert [r for _, r, _ in events(result, "p-0")] == ["Pulled"]
        assert ready_at(result) == {"p-0": 0.0}

    def test_absent_means_pull(self):
        result = _run("IfNotPresent", preloaded=False)
        assert ready_at(result) == {"p-0": 1.1}
        assert result.bytes_pulled == 100 * MI


class TestAlways:
    def test_present_image_costs_one_round_trip_and_no_bytes(self):
        result = _run("Always", preloaded=True)
        assert [r for _, r, _ in events(result, "p-0")] == ["Pulling", "Pulled"]
        assert ready_at(result) == {"p-0": 0.1}
        assert result.bytes_pulled == 0

    def test_admission_always_pull_images_overrides_the_written_policy(self):
        result = _run("IfNotPresent", preloaded=True, admission=True)
        assert result.pods[0].pod.containers[0].pull_policy == "Always"
        assert [r for _, r, _ in events(result, "p-0")] == ["Pulling", "Pulled"]


class TestDefaulting:
    def test_implied_latest_defaults_to_always(self):
        result = _run(None, preloaded=True, img=LATEST)
        assert result.pods[0].pod.containers[0].pull_policy == "Always"
        assert [r for _, r, _ in events(result, "p-0")] == ["Pulling", "Pulled"]

    def test_other_tag_defaults_to_if_not_present(self):
        result = _run(None, preloaded=True)
        assert result.pods[0].pod.containers[0].pull_policy == "IfNotPresent"


class TestInvalidImage:
    def test_invalid_reference_is_inspect_failed_and_invalid_image_name(self):
        result = simulate(
            {
                "duration": "5s",
                "workload": [{"pod": pod("p", "example.com/App:v1")}],
            }
        )
        status = result.pods[0].statuses[0]
        assert status.reason == "InvalidImageName"
        inspect = events(result, "p-0", "InspectFailed")
        assert inspect == [
            (
                0.0,
                "InspectFailed",
                'Failed to apply default image tag "example.com/App:v1": couldn\'t '
                'parse image name "example.com/App:v1": '
                + status.message.split('parse image name "example.com/App:v1": ')[1],
            )
        ]
        assert "must be lowercase" in status.message
        assert events(result, "p-0", "Failed") == [(0.0, "Failed", "Error: InvalidImageName")]

    def test_each_sync_raises_a_new_error_for_a_bad_reference(self):
        # The parse is remembered, the error is not: a kept exception raised again at every
        # sync would lengthen its traceback, and hold the frames in it, for as long as it runs.
        registry = SimulatedRegistry(Catalogue([]))
        node = Node("n", registry, KubeletConfig(), EventLog(), store=ImageStore())
        raised = []
        for _ in range(3):
            with pytest.raises(InvalidReferenceError) as caught:
                node.manager.parse("example.com/App:v1")
            raised.append(caught.value)
        assert len({id(error) for error in raised}) == 3
        assert len({str(error) for error in raised}) == 1
        assert "must be lowercase" in str(raised[0])

    def test_unknown_image_is_not_found(self):
        result = simulate(
            {"duration": "1s", "workload": [{"pod": pod("p", "example.com/nope:v1")}]}
        )
        status = result.pods[0].statuses[0]
        assert status.reason == "ErrImagePull"
        assert status.message.endswith("example.com/nope:v1: not found")

    def test_digest_wins_over_tag_when_pulling(self):
        result = simulate(
            {
                "registry": {"images": [image("example.com/app:v1", 1)]},
                "workload": [],
            }
        )
        del result
        from kubesim_images.reference import parse_normalized  # noqa: PLC0415
        from kubesim_images.registry.catalogue import make_image  # noqa: PLC0415

        pinned = make_image(parse_normalized("example.com/app:v1"), [(MI, None)])
        ref = f"example.com/app:v0@{pinned.manifest_digest}"
        result = simulate(
            {
                "duration": "1s",
                "registry": {"images": [image("example.com/app:v1", 1)]},
                "workload": [{"pod": pod("p", ref)}],
            }
        )
        assert ready_at(result) == {"p-0": 0.0}
