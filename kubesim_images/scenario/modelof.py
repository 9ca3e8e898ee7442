"""The model beside a real-time run (`scenario run FILE --real-time --compare`).

`--compare` runs each variant a second time in virtual time. A variant on the simulated
registry is its own model. One on a real registry (`registry.type: oci`) has no catalogue in
the file: the registry has it. So the images the workload names are resolved once against the
registry (manifests only, for the nodes' platform, with the pods' and the nodes' credentials),
and the model's catalogue is made of what they list: the same layer digests, so layers shared
between images are shared in the model too, and the compressed sizes the registry serves. The
model's `latency` (the one round trip a simulated pull costs before its data) is the median time
a resolve took. The model has no faults and unlimited registry egress: it says what the nodes
would see from a registry that keeps up, which is the question a comparison asks.

An image that does not resolve (not found, refused credentials, no such platform) is left out
of the catalogue, so the model fails its pulls as the real run does; `unresolved` says why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import statistics
from collections.abc import Sequence
from typing import Any

from kubesim_images.errors import InvalidReferenceError, RegistryError
from kubesim_images.keyring import Credential
from kubesim_images.oci.client import RegistryClient
from kubesim_images.oci.config import OciRegistryConfig
from kubesim_images.oci.media import Platform
from kubesim_images.oci.pull import Resolved, resolve
from kubesim_images.pod import Pod
from kubesim_images.podworkers import CredentialLookup
from kubesim_images.reference import ImageReference, parse_normalized
from kubesim_images.registry.catalogue import Catalogue, SimImage
from kubesim_images.registry.spec import RegistrySpec
from kubesim_images.scenario.model import VariantSpec
from kubesim_images.store import Layer


def model_of(
    spec: VariantSpec, credentials: CredentialLookup | None
) -> tuple[VariantSpec, dict[str, Any] | None]:
    """The variant to run in virtual time, and (for a real registry) how its model was made:
    `{"latency", "images": [{"image", "layers", "size"}], "unresolved": [{"image", "error"}]}`."""
    if spec.oci is None:
        return spec, None
    return asyncio.run(_model(spec, spec.oci, credentials))


def _images(spec: VariantSpec) -> dict[str, Pod]:
    """Each image string the workload writes, with the first pod that writes it."""
    first: dict[str, Pod] = {}
    for _at, pod in spec.pods:
        for container in pod.all_containers():
            first.setdefault(container.image, pod)
    return first


async def _model(
    spec: VariantSpec, oci: OciRegistryConfig, credentials: CredentialLookup | None
) -> tuple[VariantSpec, dict[str, Any]]:
    loop = asyncio.get_running_loop()
    catalogue = Catalogue()
    described: list[dict[str, Any]] = []
    unresolved: list[dict[str, Any]] = []
    round_trips: list[float] = []
    seen: set[str] = set()
    # One catalogue serves every pool in the model: the first pool's platform describes it.
    platform = spec.platform(spec.pools[0])
    async with RegistryClient(oci.client) as client:
        for image, pod in _images(spec).items():
            try:
                ref = parse_normalized(image).with_default_tag()
            except InvalidReferenceError:
                continue  # the model refuses it as the real run does: InvalidImageName
            if ref.pull_ref in seen:
                continue
            seen.add(ref.pull_ref)
            # the pod's provider chain, as its pull would ask it (pull secrets, then the node's)
            chain = credentials(pod) if credentials is not None else None
            tried = list(await chain.provide(ref)) if chain is not None else []
            started = loop.time()
            try:
                resolved = await _resolve(client, ref, tried or [None], platform)
            except RegistryError as exc:
                unresolved.append({"image": image, "error": str(exc)})
                continue
            round_trips.append(loop.time() - started)
            sim = _sim_image(ref, resolved)
            catalogue.add(sim)
            described.append({"image": image, "layers": len(sim.layers), "size": sim.size})
    latency = statistics.median(round_trips) if round_trips else 0.0
    registry = RegistrySpec(
        catalogue=catalogue, latency=latency, bandwidth=math.inf, faults=(), rate_limit=None
    )
    model = dataclasses.replace(spec, oci=None, registry=registry)
    info = {"latency": round(latency, 6), "images": described, "unresolved": unresolved}
    return model, info


async def _resolve(
    client: RegistryClient,
    ref: ImageReference,
    tried: Sequence[Credential | None],
    platform: Platform | None,
) -> Resolved:
    """Each credential in turn until one resolves, as a pull tries them; the last error wins."""
    for index, credential in enumerate(tried):
        try:
            return await resolve(client, ref, credential=credential, platform=platform)
        except RegistryError:
            if index == len(tried) - 1:
                raise
    raise AssertionError("unreachable: at least one attempt")  # pragma: no cover


def _sim_image(ref: ImageReference, resolved: Resolved) -> SimImage:
    return SimImage(
        ref=ref,
        layers=tuple(Layer(d.digest, d.size) for d in resolved.manifest.layers),
        manifest_digest=resolved.manifests[0].digest,
        config_digest=resolved.manifest.config.digest,
    )
