"""`registry: {type: oci, ...}` (SPEC section 10) read field by field into a client config.

Shared by the daemon's config and scenario files, so both refuse a bad field the same way
(`daemon.yaml: registry.mirrors.docker.io[0]: must be an http:// or https:// URL`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kubesim_images.fields import Fields
from kubesim_images.oci.media import Platform

if TYPE_CHECKING:  # the client pulls in aiohttp, which a simulated scenario never needs
    from kubesim_images.oci.client import ClientConfig

OCI_FIELDS = frozenset(
    {"type", "insecure", "caFile", "mirrors", "platform", "maxConcurrentDownloads", "store"}
)


@dataclass(frozen=True, slots=True)
class OciRegistryConfig:
    client: ClientConfig
    platform: Platform | None  # None: the host's
    store: Literal["keep", "discard"]


def parse_oci_registry(ctx: Fields, value: Any, path: str = "registry") -> OciRegistryConfig:
    doc = ctx.mapping(value, path, set(OCI_FIELDS))
    insecure = []
    for index, host in enumerate(ctx.sequence(doc.get("insecure"), f"{path}.insecure")):
        if not isinstance(host, str) or not host or "/" in host:
            raise ctx.fail(f"{path}.insecure[{index}]", f"must be a host[:port], got {host!r}")
        insecure.append(host)
    ca_file = doc.get("caFile")
    if ca_file is not None and (not isinstance(ca_file, str) or not Path(ca_file).is_file()):
        raise ctx.fail(f"{path}.caFile", f"must name a readable PEM file, got {ca_file!r}")
    mirrors: dict[str, tuple[str, ...]] = {}
    for host, urls in ctx.mapping(doc.get("mirrors"), f"{path}.mirrors").items():
        where = f"{path}.mirrors.{host}"
        checked = []
        for index, url in enumerate(ctx.sequence(urls, where)):
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ctx.fail(
                    f"{where}[{index}]", f"must be an http:// or https:// URL, got {url!r}"
                )
            checked.append(url)
        mirrors[str(host)] = tuple(checked)
    platform = None
    if doc.get("platform") is not None:
        try:
            platform = Platform.parse(str(doc["platform"]))
        except ValueError as exc:
            raise ctx.fail(f"{path}.platform", str(exc)) from None
    downloads = ctx.integer(
        doc.get("maxConcurrentDownloads", 3), f"{path}.maxConcurrentDownloads", minimum=1
    )
    store = doc.get("store", "keep")
    if store not in ("keep", "discard"):
        raise ctx.fail(f"{path}.store", f"must be keep or discard, got {store!r}")
    from kubesim_images.oci.client import ClientConfig  # noqa: PLC0415 - see the imports

    client = ClientConfig(
        insecure=frozenset(insecure),
        ca_file=ca_file,
        mirrors=mirrors,
        max_concurrent_downloads=downloads,
    )
    return OciRegistryConfig(client, platform, store)
