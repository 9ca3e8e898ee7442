"""The simulated registry as users describe it in scenario files and the daemon's config:
catalogue, latency, egress bandwidth, faults and rate limit, validated field by field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubesim_images.errors import InvalidReferenceError
from kubesim_images.fields import Fields
from kubesim_images.reference import ImageReference, parse_normalized
from kubesim_images.registry.catalogue import Catalogue, SimImage, make_image
from kubesim_images.registry.simulated import Fault, RateLimit
from kubesim_images.registryerrors import ERROR_KINDS

REGISTRY_FIELDS = {"latency", "bandwidth", "images", "faults", "rateLimit"}


@dataclass(frozen=True, slots=True)
class RegistrySpec:
    catalogue: Catalogue
    latency: float
    bandwidth: float
    faults: tuple[Fault, ...]
    rate_limit: RateLimit | None


def parse_ref(ctx: Fields, value: Any, path: str) -> ImageReference:
    if not isinstance(value, str):
        raise ctx.fail(path, f"must be an image reference string, got {value!r}")
    try:
        return parse_normalized(value)
    except InvalidReferenceError as exc:
        raise ctx.fail(path, f"{value!r}: {exc}") from None


def parse_registry(ctx: Fields, raw: Mapping[str, Any], where: str) -> RegistrySpec:
    images: list[SimImage] = []
    seen: set[str] = set()
    for index, item in enumerate(ctx.sequence(raw.get("images"), f"{where}.images")):
        path = f"{where}.images[{index}]"
        entry = ctx.mapping(item, path, {"name", "layers", "auth"})
        ref = parse_ref(ctx, entry.get("name"), f"{path}.name")
        layers: list[tuple[int, str | None]] = []
        raw_layers = ctx.sequence(entry.get("layers"), f"{path}.layers")
        if not raw_layers:
            raise ctx.fail(f"{path}.layers", "required: at least one layer ({size: 10Mi})")
        for lindex, layer in enumerate(raw_layers):
            lpath = f"{path}.layers[{lindex}]"
            spec = ctx.mapping(layer, lpath, {"size", "digest"})
            if "size" not in spec:
                raise ctx.fail(f"{lpath}.size", "required")
            digest = spec.get("digest")
            if digest is not None and not _is_digest(digest):
                raise ctx.fail(
                    f"{lpath}.digest", f"invalid digest {digest!r} (want sha256:<64 lowercase hex>)"
                )
            layers.append((ctx.size(spec["size"], f"{lpath}.size"), digest))
        image = make_image(ref.with_default_tag() if not ref.digest else ref, layers)
        if entry.get("auth") is not None:
            auth = ctx.mapping(entry["auth"], f"{path}.auth", {"username", "password"})
            user, password = auth.get("username"), auth.get("password")
            if not isinstance(user, str) or not isinstance(password, str) or not user:
                raise ctx.fail(f"{path}.auth", "needs a username and a password (strings)")
            image = dataclasses.replace(image, auth=(user, password))
        key = str(image.ref)
        if key in seen:
            raise ctx.fail(f"{path}.name", f"duplicate image {key}")
        seen.add(key)
        images.append(image)
    faults: list[Fault] = []
    for index, item in enumerate(ctx.sequence(raw.get("faults"), f"{where}.faults")):
        path = f"{where}.faults[{index}]"
        entry = ctx.mapping(item, path, {"image", "failFirst", "probability", "error"})
        error = entry.get("error", "internal error")
        if not isinstance(error, str) or not error:
            raise ctx.fail(
                f"{path}.error", "must be an error kind such as " + ", ".join(sorted(ERROR_KINDS))
            )
        image_ref = parse_ref(ctx, entry["image"], f"{path}.image") if "image" in entry else None
        fail_first = (
            ctx.integer(entry["failFirst"], f"{path}.failFirst", minimum=1)
            if "failFirst" in entry
            else None
        )
        probability = (
            ctx.number(entry["probability"], f"{path}.probability", low=0.0, high=1.0)
            if "probability" in entry
            else None
        )
        faults.append(
            Fault(error=error, image=image_ref, fail_first=fail_first, probability=probability)
        )
    rate_limit = None
    if raw.get("rateLimit") is not None:
        rl = ctx.mapping(raw["rateLimit"], f"{where}.rateLimit", {"pulls", "window", "perNode"})
        pulls = ctx.integer(rl.get("pulls"), f"{where}.rateLimit.pulls", minimum=1)
        window = ctx.duration(rl.get("window", "6h"), f"{where}.rateLimit.window")
        if window <= 0:
            raise ctx.fail(f"{where}.rateLimit.window", "must be positive")
        per_node = rl.get("perNode", False)
        if not isinstance(per_node, bool):
            raise ctx.fail(f"{where}.rateLimit.perNode", "must be true or false")
        rate_limit = RateLimit(pulls=pulls, window=window, per_node=per_node)
    latency = ctx.duration(raw.get("latency", "0s"), f"{where}.latency")
    bandwidth = ctx.bandwidth(raw.get("bandwidth", "unlimited"), f"{where}.bandwidth")
    return RegistrySpec(Catalogue(images), latency, bandwidth, tuple(faults), rate_limit)


def _is_digest(value: Any) -> bool:
    if not isinstance(value, str) or not value.startswith("sha256:"):
        return False
    hexpart = value[7:]
    return len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart)
