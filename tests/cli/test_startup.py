"""A command's imports run without the cyclic collector, and what they made is frozen; aiohttp's
can run with OpenSSL's default CAs pointing at nothing, and only while they run."""

from __future__ import annotations

import gc
import os
import ssl
from collections.abc import Iterator

import pytest

from kubesim_images.startup import imports_without_gc, without_default_cas


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()  # the test process's objects are collectable again
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_off_inside_and_what_exists_is_frozen_after() -> None:
    gc.enable()
    gc.unfreeze()
    with imports_without_gc():
        assert not gc.isenabled()
        made = [[] for _ in range(10)]  # lists: objects the collector tracks
    assert gc.isenabled()
    # Frozen objects are in no generation the collector walks (nor lists).
    walked = {id(o) for o in gc.get_objects()}
    assert not walked & {id(o) for o in [made, *made]}
    assert gc.get_freeze_count() >= len(made) + 1


def test_a_collector_turned_off_by_the_caller_stays_off() -> None:
    gc.disable()
    with imports_without_gc():
        pass
    assert not gc.isenabled()


def test_the_collector_is_back_after_a_failed_import() -> None:
    gc.enable()
    with pytest.raises(ModuleNotFoundError), imports_without_gc():
        import kubesim_images.no_such_module  # type: ignore[import-not-found]  # noqa: F401, PLC0415
    assert gc.isenabled()


def test_contexts_made_without_default_cas_hold_none_and_later_ones_hold_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = ssl.get_default_verify_paths()
    if defaults.cafile is None:
        pytest.skip("this system has no default CA file to leave out")  # pragma: no cover
    monkeypatch.setenv("SSL_CERT_FILE", defaults.cafile)  # one set by the user, one not
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    before = ssl.create_default_context().cert_store_stats()
    assert before["x509_ca"] > 0
    with without_default_cas():
        inside = ssl.create_default_context()
        bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        bare.set_default_verify_paths()
    assert inside.cert_store_stats()["x509"] == 0
    assert bare.cert_store_stats()["x509"] == 0
    assert inside.verify_mode == ssl.CERT_REQUIRED  # so it can only refuse
    assert os.environ["SSL_CERT_FILE"] == defaults.cafile
    assert "SSL_CERT_DIR" not in os.environ
    assert ssl.create_default_context().cert_store_stats() == before


def test_the_variables_come_back_after_a_failed_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", "/etc/ssl/certs")
    with pytest.raises(ModuleNotFoundError), without_default_cas():
        import kubesim_images.no_such_module  # type: ignore[import-not-found]  # noqa: F401, PLC0415
    assert "SSL_CERT_FILE" not in os.environ
    assert os.environ["SSL_CERT_DIR"] == "/etc/ssl/certs"
