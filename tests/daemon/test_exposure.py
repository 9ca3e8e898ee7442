"""Finding 7 of issue 7: an unsafe start is refused, not silent (the warnings: integration)."""

from __future__ import annotations

import pytest

from kubesim_images.cli import EXIT_INVALID, main
from kubesim_images.daemon.exposure import is_loopback, refusal


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"])
def test_loopback_addresses_need_no_token(address):
    assert is_loopback(address)
    assert refusal(address) is None


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.5", "node.example.com"])  # noqa: S104
def test_other_addresses_are_refused_without_a_token(address):
    assert not is_loopback(address)
    text = refusal(address)
    assert text is not None
    assert "--token-file" in text
    assert "--insecure-bind" in text


def test_serve_refuses_before_binding(tmp_path, capsys):
    code = main(["serve", "--address", "0.0.0.0", "--port", "0", "--state-dir", str(tmp_path)])  # noqa: S104
    assert code == EXIT_INVALID
    assert "--insecure-bind" in capsys.readouterr().err
    assert not (tmp_path / "state.db").exists()
