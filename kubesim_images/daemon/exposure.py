"""Who can reach the daemon: an unsafe start is refused, a weak one is warned about.

The API serves secret metadata, pods and `/debug/pulls`. Bound beyond loopback without a token
it serves them to the network, so that start is refused unless `--insecure-bind` says it is
meant. A token over plain HTTP protects nothing kubectl will use: kubectl sends a bearer token
only over HTTPS, so the operator is told.
"""

from __future__ import annotations

import ipaddress


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def refusal(address: str) -> str | None:
    """Why `serve` refuses to start on `address` without a token, or None when it may."""
    if is_loopback(address):
        return None
    return (
        f"--address {address} serves the API (secrets' metadata, pods, /debug/pulls) beyond "
        "this machine, and no --token-file guards it; give --token-file FILE (with "
        "--tls-cert-file/--tls-private-key-file so kubectl sends the token), or --insecure-bind "
        "if anyone who can reach the port may use it"
    )


PLAIN_HTTP_WARNING = (
    "a token without TLS: kubectl sends --token only over HTTPS, so kubectl requests will be "
    "refused 401; give --tls-cert-file and --tls-private-key-file, or use a client that sends "
    "the token over HTTP"
)
