"""Tests for ``kubesim-images explain``, run in-process through ``kubesim_images.cli.main``.

The command shows what the kubelet makes of image strings: the normalised reference, the pull
policy the API server defaults, the decision and event the kubelet produces, and which docker
config keys would be tried (never a secret). Invalid images are reported, not raised; a docker
config that cannot be read is a usage error (exit 2, ``error:`` on stderr, no traceback).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from kubesim_images.cli import EXIT_INVALID, EXIT_OK, _parser, main

DIGEST = "sha256:" + "0123456789abcdef" * 4
PAUSE = f"registry.k8s.io/pause@{DIGEST}"
PASSWORD = "hunter2-S3CRET-pw"  # a fake secret that must never be printed


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    # main() configures structlog to write to the (captured) stderr; put it back afterwards.
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["explain", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    code, out, _ = _run(capsys, "-o", "json", *argv)
    assert code == EXIT_OK
    results = json.loads(out)
    assert isinstance(results, list)
    return results


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    auth = base64.b64encode(f"robot:{PASSWORD}".encode()).decode()
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": auth},
                    "*.example.com": {"username": "robot", "password": PASSWORD},
                    "example.com/team": {"auth": auth},
                    "https://example.com": {"username": "robot", "password": PASSWORD},
                }
            }
        ),
        encoding="utf-8",
    )
    return path


# --- valid images: the normalised reference and defaulted policy -----------------------------


def test_json_fields_for_three_kinds_of_reference(capsys: pytest.CaptureFixture[str]) -> None:
    results = _run_json(capsys, "nginx", "busybox:1.36", PAUSE)
    assert [r["image"] for r in results] == ["nginx", "busybox:1.36", PAUSE]
    assert all(r["valid"] is True and r["error"] is None for r in results)
    assert [r["reference"] for r in results] == [
        {
            "normalized": "docker.io/library/nginx:latest",
            "registry": "docker.io",
            "repository": "library/nginx",
            "tag": "latest",
            "digest": None,
            "pullRef": "docker.io/library/nginx:latest",
        },
        {
            "normalized": "docker.io/library/busybox:1.36",
            "registry": "docker.io",
            "repository": "library/busybox",
            "tag": "1.36",
            "digest": None,
            "pullRef": "docker.io/library/busybox:1.36",
        },
        {
            "normalized": PAUSE,
            "registry": "registry.k8s.io",
            "repository": "pause",
            "tag": None,
            "digest": DIGEST,
            "pullRef": PAUSE,
        },
    ]
    assert [r["defaultPullPolicy"] for r in results] == ["Always", "IfNotPresent", "IfNotPresent"]
    assert [r["pullPolicy"] for r in results] == ["Always", "IfNotPresent", "IfNotPresent"]


def test_absent_image_is_pulled_with_the_kubelet_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [result] = _run_json(capsys, "busybox:1.36")
    assert result["decision"] == {
        "action": "pull",
        "waitingReason": None,
        "event": {"type": "Normal", "reason": "Pulling", "message": 'Pulling image "busybox:1.36"'},
    }
    assert result["credentials"] == []


def test_tag_and_digest_keeps_both(capsys: pytest.CaptureFixture[str]) -> None:
    [result] = _run_json(capsys, f"nginx:1.27@{DIGEST}")
    assert result["reference"]["tag"] == "1.27"
    assert result["reference"]["digest"] == DIGEST
    assert result["reference"]["pullRef"] == f"docker.io/library/nginx@{DIGEST}"
    assert result["defaultPullPolicy"] == "IfNotPresent"


# --- invalid images: reported, never raised ---------------------------------------------------


@pytest.mark.parametrize(
    ("image", "error"),
    [
        ("UPPER/Case:tag", "invalid reference format: repository name (Case) must be lowercase"),
        ("nginx:", "invalid reference format"),
        ("a@sha256:short", "invalid reference format"),
    ],
)
def test_invalid_image_is_reported(
    capsys: pytest.CaptureFixture[str], image: str, error: str
) -> None:
    [result] = _run_json(capsys, image)
    assert result["image"] == image
    assert result["valid"] is False
    assert result["error"] == error
    assert result["reference"] is None
    assert result["credentials"] == []
    assert result["decision"]["action"] == "invalid-image-name"
    assert result["decision"]["waitingReason"] == "InvalidImageName"
    assert result["decision"]["event"] == {
        "type": "Warning",
        "reason": "InspectFailed",
        "message": f'Failed to apply default image tag "{image}": couldn\'t parse image name '
        f'"{image}": {error}',
    }


def test_invalid_and_valid_images_together(capsys: pytest.CaptureFixture[str]) -> None:
    results = _run_json(capsys, "nginx:", "nginx")
    assert [r["valid"] for r in results] == [False, True]


def test_double_dash_lets_a_leading_dash_image_be_judged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [result] = _run_json(capsys, "--", "-docker")
    assert result["image"] == "-docker"
    assert result["valid"] is False
    assert result["error"]
    assert result["reference"] is None


def test_leading_dash_image_without_double_dash_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["explain", "-docker"])
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


# --- pull policy and presence: the kubelet's decision -----------------------------------------


def test_never_without_the_image_is_err_image_never_pull(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [result] = _run_json(capsys, "--pull-policy", "Never", "nginx")
    assert result["pullPolicy"] == "Never"
    assert result["defaultPullPolicy"] == "Always"
    assert result["decision"] == {
        "action": "never-pull-error",
        "waitingReason": "ErrImageNeverPull",
        "event": {
            "type": "Warning",
            "reason": "ErrImageNeverPull",
            "message": 'Container image "nginx" is not present with pull policy of Never',
        },
    }


@pytest.mark.parametrize(("argv"), [["--pull-policy", "IfNotPresent"], ["--pull-policy", "Never"]])
def test_present_image_is_not_pulled(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    [result] = _run_json(capsys, "--present", *argv, "x")
    assert result["decision"] == {
        "action": "already-present",
        "waitingReason": None,
        "event": {
            "type": "Normal",
            "reason": "Pulled",
            "message": 'Container image "x" already present on machine',
        },
    }


def test_present_image_is_pulled_anyway_with_always(capsys: pytest.CaptureFixture[str]) -> None:
    # "x" means x:latest, so its default policy is Always.
    [result] = _run_json(capsys, "--present", "x")
    assert result["pullPolicy"] == "Always"
    assert result["decision"]["action"] == "pull"


def test_present_tagged_image_uses_the_default_if_not_present(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [result] = _run_json(capsys, "--present", "x:1.0")
    assert result["pullPolicy"] == "IfNotPresent"
    assert result["decision"]["action"] == "already-present"
    assert (
        result["decision"]["event"]["message"]
        == 'Container image "x:1.0" already present on machine'
    )


# --- --docker-config: which keys would be tried -----------------------------------------------


@pytest.mark.parametrize(
    ("image", "keys"),
    [
        ("nginx", ["https://index.docker.io/v1/"]),
        ("someone/app:1.0", ["https://index.docker.io/v1/"]),
        ("registry.example.com/team/app", ["*.example.com"]),
        ("example.com/team/app", ["example.com/team", "https://example.com"]),
        ("example.com/other/app", ["https://example.com"]),
        ("quay.io/org/app", []),
        ("a.b.example.com/app", []),
    ],
)
def test_docker_config_lists_matching_keys_as_written_in_order(
    capsys: pytest.CaptureFixture[str], docker_config: Path, image: str, keys: list[str]
) -> None:
    [result] = _run_json(capsys, "--docker-config", str(docker_config), image)
    assert [c["match"] for c in result["credentials"]] == keys
    assert {c["source"] for c in result["credentials"]} <= {str(docker_config)}
    assert all(set(c) == {"source", "match"} for c in result["credentials"])


@pytest.mark.parametrize("output", ["json", "text"])
def test_docker_config_secrets_are_never_printed(
    capsys: pytest.CaptureFixture[str], docker_config: Path, output: str
) -> None:
    auth = base64.b64encode(f"robot:{PASSWORD}".encode()).decode()
    images = ["nginx", "registry.example.com/team/app", "example.com/team/app", "quay.io/x"]
    code, out, err = _run(capsys, "-o", output, "--docker-config", str(docker_config), *images)
    assert code == EXIT_OK
    assert "example.com/team" in out
    for secret in (PASSWORD, auth):
        assert secret not in out
        assert secret not in err


def test_text_output_names_the_keys_tried(
    capsys: pytest.CaptureFixture[str], docker_config: Path
) -> None:
    code, out, _ = _run(capsys, "--docker-config", str(docker_config), "example.com/team/app")
    assert code == EXIT_OK
    assert f"example.com/team ({docker_config}), https://example.com ({docker_config})" in out


def test_text_output_without_match_says_anonymous(
    capsys: pytest.CaptureFixture[str], docker_config: Path
) -> None:
    _, out, _ = _run(capsys, "--docker-config", str(docker_config), "quay.io/org/app")
    assert "none matched (anonymous pull)" in out


@pytest.mark.parametrize(
    "content",
    [
        None,  # missing file
        "{not json",
        '{"auths": {"quay.io": {"auth": "pants"}}}',
        '{"auths": ["quay.io"]}',
        "[]",
    ],
)
def test_unusable_docker_config_exits_2_with_an_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, out, err = _run(capsys, "-o", "json", "--docker-config", str(path), "nginx")
    assert code == EXIT_INVALID == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert str(path) in lines[0]


# --- text output -------------------------------------------------------------------------------


def test_text_output_shows_the_normalised_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "nginx", "busybox:1.36")
    assert code == EXIT_OK
    assert "docker.io/library/nginx:latest" in out
    assert "docker.io/library/busybox:1.36" in out
    assert "pull policy:  Always (default)" in out


def test_text_output_for_an_invalid_image(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "-o", "text", "nginx:")
    assert code == EXIT_OK
    assert "invalid:      invalid reference format" in out
    assert "InvalidImageName" in out


def test_logging_options_are_accepted_before_and_after_the_command(capsys):
    """`serve --log-format console` is how people type it; the global form works too."""
    after = _parser().parse_args(["explain", "--log-format", "console", "nginx"])
    before = _parser().parse_args(["--log-format", "console", "explain", "nginx"])
    default = _parser().parse_args(["serve"])
    assert after.log_format == before.log_format == "console"
    assert (default.log_format, default.log_level) == ("json", None)
