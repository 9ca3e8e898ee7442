"""Session fixtures: one registry storage seeded once, served open, with htpasswd, and with
Bearer tokens; the images the tests pull, with what each test needs to know about them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ocikit import (
    PASSWORD,
    USER,
    Layout,
    Registry,
    Seeded,
    TokenServer,
    make_tls,
    require_tools,
    skopeo_copy,
)


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    require_tools()
    work = tmp_path_factory.mktemp("registry")
    storage = work / "storage"
    storage.mkdir()
    registry = Registry(work, storage)
    layout = Layout(work / "layout")
    images: dict[str, dict[str, Any]] = {}

    def seed(name: str, desc: dict[str, Any], *extra: str) -> None:
        layout.tag(name, desc)
        images[name] = desc
        skopeo_copy(layout, name, f"{registry.host}/demo/{name}:v1", *extra)

    tiny = layout.image([{"etc/hello.txt": b"hello tiny\n"}])
    seed("tiny", tiny)
    layout.tag("tiny-docker", tiny)
    skopeo_copy(layout, "tiny-docker", f"{registry.host}/demo/tiny-docker:v1", "--format", "v2s2")
    multi = layout.index(
        [
            layout.image([{"etc/arch.txt": b"amd64\n"}], "amd64"),
            layout.image([{"etc/arch.txt": b"arm64\n"}], "arm64", "v8"),
        ]
    )
    seed("multi", multi, "--all")
    layout.tag("multi-docker", multi)
    skopeo_copy(
        layout, "multi-docker", f"{registry.host}/demo/multi-docker:v1", "--all", "--format", "v2s2"
    )
    base = {"base/os-release": os.urandom(32 << 10)}
    seed("shared-a", layout.image([base, {"app/a": b"a\n"}]))
    seed("shared-b", layout.image([base, {"app/b": b"b\n"}]))
    tamper = layout.image([{"data/x": os.urandom(64 << 10)}])
    seed("tamper", tamper)
    big = layout.image([{"etc/small": b"small\n"}, {"data/random.bin": os.urandom(2 << 20)}])
    seed("big", big)
    manifests = {
        name: json.loads(
            (layout.root / "blobs/sha256" / d["digest"].removeprefix("sha256:")).read_bytes()
        )
        for name, d in images.items()
        if name in {"big", "tamper"}
    }
    yield Seeded(
        registry,
        layout,
        images,
        big_layer=manifests["big"]["layers"][1],
        tamper_layer=manifests["tamper"]["layers"][0],
    )
    registry.stop()


@pytest.fixture(scope="session")
def basic_registry(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    work = tmp_path_factory.mktemp("basic")
    htpasswd = work / "htpasswd"
    line = subprocess.run(
        ["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True
    ).stdout
    htpasswd.write_text(line)
    auth = {"htpasswd": {"realm": "kubesim-test", "path": str(htpasswd)}}
    registry = Registry(work, seeded.open.storage, auth)
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def token_registry(
    seeded: Seeded, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Registry, TokenServer]]:
    work = tmp_path_factory.mktemp("token")
    server = TokenServer(work)
    server.start()
    registry = Registry(work, seeded.open.storage, server.auth_config())
    yield registry, server
    registry.stop()
    server.stop()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture(scope="session")
def tls_registry(
    seeded: Seeded, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Registry, Path]]:
    """The seeded storage over HTTPS with a certificate from a test CA; yields the CA file."""
    work = tmp_path_factory.mktemp("tls")
    ca, cert, key = make_tls(work)
    registry = Registry(work, seeded.open.storage, tls=(cert, key))
    yield registry, ca
    registry.stop()
