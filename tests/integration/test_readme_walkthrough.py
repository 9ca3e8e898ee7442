"""The README's private-image walk-through, run as a user runs it: `make run` (the daemon on its
embedded default config, no --config), the real kubectl, and `kubesim-images catalogue`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DaemonFactory, Kubectl, poll

pytestmark = pytest.mark.integration
PRIVATE = "registry.example.com/team/private:v1"


def test_private_image_walkthrough_on_the_embedded_default(
    daemon_factory: DaemonFactory, kubectl_bin: str, tmp_path: Path
) -> None:
    catalogue = subprocess.run(
        [sys.executable, "-m", "kubesim_images", "catalogue", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    listed = {row["reference"]: row for row in json.loads(catalogue.stdout)["images"]}
    assert listed[PRIVATE]["auth"] is True

    daemon = daemon_factory(embedded=True)
    assert daemon.api("GET", "/debug/catalogue") == json.loads(catalogue.stdout)
    k = Kubectl(kubectl_bin, daemon.base_url, tmp_path / "home")
    k.run(
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "--docker-server=registry.example.com",
        "--docker-username=robot",
        "--docker-password=s3cret",
    )
    k.run("create", "serviceaccount", "builder")
    k.run("patch", "serviceaccount", "builder", "-p", '{"imagePullSecrets":[{"name":"regcred"}]}')
    created = k.run(
        "run",
        "private",
        f"--image={PRIVATE}",
        '--overrides={"apiVersion": "v1", "spec": {"serviceAccountName": "builder"}}',
    )
    assert created.stdout.strip() == "pod/private created"

    def running() -> bool:
        return "Running" in k.run("get", "pod", "private", "--no-headers").stdout

    poll(running, timeout=20, interval=0.2, what="the private image pod Running")
    described = k.run("describe", "pod", "private").stdout
    assert f'Successfully pulled image "{PRIVATE}"' in " ".join(described.split())
