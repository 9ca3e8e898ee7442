"""`kubesim-images pull/images/rmi/inspecti` against a real registry, as a user runs them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from ocikit import PASSWORD, USER, Registry, Seeded

from kubesim_images.cli import main

pytestmark = pytest.mark.integration


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class TestPullVerb:
    """`pull` prints SPEC section 6's JSON and fills the store the other verbs read."""

    def test_pull_images_inspecti_rmi(
        self, seeded: Seeded, state_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        image = f"{seeded.open.host}/demo/multi:v1"
        code, out, err = run(
            capsys, "pull", image, "--platform", "linux/arm64", "--state-dir", str(state_dir),
            "-o", "json",
        )  # fmt: skip
        assert code == 0, err
        pulled = json.loads(out)
        assert set(pulled) == {"image", "id", "repoDigest", "size", "layers"}
        assert pulled["image"] == image
        assert (
            pulled["repoDigest"]
            == f"{seeded.open.host}/demo/multi@{seeded.images['multi']['digest']}"
        )
        assert len(pulled["layers"]) == 1
        assert pulled["size"] > 0

        code, out, _ = run(capsys, "images", "--state-dir", str(state_dir), "-o", "json")
        [listed] = json.loads(out)["images"]
        assert listed["id"] == pulled["id"]
        assert listed["repoTags"] == [image]
        assert listed["size"] == str(pulled["size"])

        code, out, _ = run(capsys, "images", "--state-dir", str(state_dir))
        header, row = out.splitlines()
        assert header.split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
        assert row.split()[:3] == [f"{seeded.open.host}/demo/multi", "v1", pulled["id"][7:20]]

        code, out, _ = run(capsys, "inspecti", image, "--state-dir", str(state_dir))
        inspected = json.loads(out)
        assert inspected["status"]["id"] == pulled["id"]
        assert inspected["info"]["imageSpec"]["architecture"] == "arm64"
        assert inspected["info"]["platform"] == "linux/arm64/v8"

        code, out, _ = run(capsys, "rmi", pulled["id"][7:20], "--state-dir", str(state_dir))
        assert (code, out) == (0, f"Deleted: {image}\n")
        code, out, _ = run(capsys, "images", "--state-dir", str(state_dir), "-q")
        assert out == ""
        assert list((state_dir / "content/blobs/sha256").iterdir()) == []

    def test_rmi_unknown_image_fails(
        self, state_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = run(capsys, "rmi", "example.com/nope:v1", "--state-dir", str(state_dir))
        assert code == 1
        assert err == "error: no such image example.com/nope:v1\n"

    def test_invalid_image_is_refused_with_distributions_text(
        self, state_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = run(capsys, "pull", "Foo/Bar", "--state-dir", str(state_dir))
        assert code == 2
        assert "must be lowercase" in err

    def test_creds_and_docker_config(
        self,
        seeded: Seeded,
        basic_registry: Registry,
        state_dir: Path,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        image = f"{basic_registry.host}/demo/tiny:v1"
        code, _, err = run(capsys, "pull", image, "--state-dir", str(state_dir))
        assert code == 1
        assert "pull access denied" in err
        code, _, err = run(
            capsys, "pull", image, "--creds", f"{USER}:{PASSWORD}", "--state-dir", str(state_dir)
        )
        assert code == 0, err
        config = tmp_path / "config.json"
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        config.write_text(json.dumps({"auths": {basic_registry.host: {"auth": auth}}}))
        code, out, err = run(
            capsys, "pull", image, "--docker-config", str(config), "--state-dir",
            str(tmp_path / "other"), "-o", "json",
        )  # fmt: skip
        assert code == 0, err
        assert PASSWORD not in out + err
        assert json.loads(out)["repoDigest"].startswith(f"{basic_registry.host}/demo/tiny@sha256:")


class TestEdges:
    """Bad input is refused with a message and an exit code, never a traceback."""

    def test_unreadable_ca_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        missing = tmp_path / "nope.pem"
        code, _, err = run(
            capsys, "pull", "127.0.0.1:5000/a:v1", "--ca-file", str(missing), "--state-dir",
            str(tmp_path / "state"),
        )  # fmt: skip
        assert code == 2
        assert err.startswith(f"error: --ca-file {missing}: cannot load the CA:")

    def test_a_ca_file_without_certificates(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        garbage = tmp_path / "ca.pem"
        garbage.write_text("not a certificate\n")
        code, _, err = run(
            capsys, "pull", "127.0.0.1:5000/a:v1", "--ca-file", str(garbage), "--state-dir",
            str(tmp_path / "state"),
        )  # fmt: skip
        assert code == 2
        assert err.startswith(f"error: --ca-file {garbage}: cannot load the CA:")
        assert "no certificate or crl found" in err
        assert not (tmp_path / "state").exists()  # refused before anything is written

    def test_state_dir_that_is_a_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        blocker = tmp_path / "state"
        blocker.write_text("not a directory")
        code, _, err = run(capsys, "images", "--state-dir", str(blocker))
        assert code == 1
        assert err.startswith(f"error: cannot open the content store in {blocker}/content:")

    def test_creds_without_a_colon(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = run(
            capsys, "pull", "127.0.0.1:5000/a:v1", "--creds", "alice", "--state-dir", str(tmp_path)
        )
        assert (code, err) == (2, "error: --creds must be USER:PASSWORD\n")
