"""`kubesim-images catalogue`: what the simulated registry serves, never a password.

Run in-process through `kubesim_images.cli.main`, on the embedded default and on a config file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from kubesim_images.cli import EXIT_INVALID, EXIT_OK, main

PRIVATE = "registry.example.com/team/private"


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["catalogue", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def rows(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, dict[str, Any]]:
    code, out, _ = run(capsys, *argv, "-o", "json")
    assert code == EXIT_OK
    return {row["reference"]: row for row in json.loads(out)["images"]}


def test_the_embedded_default_lists_its_images_with_the_private_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    listed = rows(capsys)
    private = listed[f"{PRIVATE}:v1"]
    assert private == {
        "name": PRIVATE,
        "repository": PRIVATE,
        "tag": "v1",
        "reference": f"{PRIVATE}:v1",
        "digest": private["digest"],
        "size": 50 * 2**20,
        "layers": 1,
        "sharedLayers": 0,
        "auth": True,
    }
    nginx = listed["nginx:1.27"]
    assert (nginx["repository"], nginx["auth"]) == ("docker.io/library/nginx", False)
    assert nginx["sharedLayers"] == 1  # the Debian bookworm base, which redis also has
    assert "redis:7.4" in listed
    assert "redis:latest" not in listed  # why `redis` is "not found": the listing says so


def test_table_columns_and_no_password(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TAG", "SIZE", "LAYERS", "SHARED", "AUTH"]
    assert [PRIVATE, "v1", "50", "MiB", "1", "0", "yes"] in [line.split() for line in lines]
    assert "s3cret" not in out
    assert "robot" not in out


def test_a_config_file_is_listed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "DaemonConfig",
        "node": {"preloadedImages": []},
        "registry": {
            "bundledCatalogue": False,
            "images": [
                {
                    "name": "example.com/a:v1",
                    "layers": [{"size": "1Mi", "digest": "sha256:" + "a" * 64}],
                },
                {
                    "name": "example.com/b:v1",
                    "layers": [{"size": "1Mi", "digest": "sha256:" + "a" * 64}, {"size": "2Mi"}],
                    "auth": {"username": "u", "password": "topsecret"},
                },
            ],
        },
    }
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    listed = rows(capsys, "--config", str(path))
    assert set(listed) == {"example.com/a:v1", "example.com/b:v1"}
    assert listed["example.com/b:v1"]["sharedLayers"] == 1
    assert listed["example.com/b:v1"]["size"] == 3 * 2**20
    code, out, _ = run(capsys, "--config", str(path))
    assert code == EXIT_OK
    assert "topsecret" not in out


def test_an_invalid_config_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "--config", str(tmp_path / "missing.yaml"))
    assert code == EXIT_INVALID
    assert out == ""
    assert err.startswith("error: ")
    assert "cannot read config" in err
