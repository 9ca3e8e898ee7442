"""The TLS context registry connections are verified with: the system's CAs and a configured
CA file. Apart from the client (no aiohttp here), so a command can build it before it imports
aiohttp: parsing the CA bundle takes 20 to 25 ms, which OpenSSL spends without the GIL."""

from __future__ import annotations

import ssl


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Certificates verified against the system's CAs (OpenSSL's defaults, so SSL_CERT_FILE and
    SSL_CERT_DIR are honoured) and `ca_file`'s; HTTP/1.1 offered by ALPN, as aiohttp's own
    contexts do (it speaks nothing else). Blocking: it reads the CA files."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(ca_file)
    context.set_alpn_protocols(["http/1.1"])
    return context
