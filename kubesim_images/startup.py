"""Start-up of a command: its imports run without the cyclic garbage collector, and aiohttp's
without loading CAs it will not use.

Importing the CLI, and aiohttp for `pull`, creates a few hundred thousand objects that live as
long as the process (modules, classes, functions, constants). The collector, which runs every
few hundred allocations, walks them again and again while they are being created: tens of
milliseconds of a pull's start spent finding no garbage. So imports run with it off, and what
they made is then moved out of its sight for good (`gc.freeze`), which also spares every later
collection of a long run (the daemon, a scenario) the walk over them.

aiohttp builds two TLS contexts as it is imported (`aiohttp.connector`: the ones a request
made with `ssl=True` or `ssl=False` falls back to), each parsing the system's CA bundle: 20 to
25 ms apiece, a fifth of a pull's start-up, for contexts our registry client never uses (it
hands every connection its own, `oci.client`). `without_default_cas` points OpenSSL's default
CA locations at nothing while aiohttp is imported, so those two are built empty.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator

# OpenSSL's documented overrides of its default CA file and directory, read when a context
# loads the defaults (`SSLContext.set_default_verify_paths`, `ssl.create_default_context`).
_CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")


@contextlib.contextmanager
def imports_without_gc() -> Iterator[None]:
    """Collector off for the block; afterwards what exists is frozen and it is on again (if
    it was on: a caller that turned it off keeps it off)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def without_default_cas() -> Iterator[None]:
    """TLS contexts that load OpenSSL's default CAs in the block get none (the variables are
    restored afterwards, as they were, set or not). Safe by construction: a context without
    CAs refuses every certificate, it accepts none; so at worst a connection that used one of
    them would fail, never go unverified. For the import of aiohttp only, by a command whose
    other threads make no TLS context meanwhile; contexts made afterwards load the CAs as
    usual."""
    saved = {name: os.environ.get(name) for name in _CA_VARIABLES}
    for name in _CA_VARIABLES:
        os.environ[name] = os.devnull  # not a PEM file, not a directory: no CA in either
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
