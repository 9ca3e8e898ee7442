"""The catalogue the embedded default registry serves: common public images with realistic
compressed layer sizes, sharing base layers the way the real images do (the Debian bookworm
layers under nginx, redis, postgres and python-slim; buildpack-deps under python, node, golang),
so pulling a second image on a node costs what it would cost for real.
"""

from __future__ import annotations

from dataclasses import replace

from kubesim_images.reference import parse_normalized
from kubesim_images.registry.catalogue import Catalogue, SimImage, derived_digest, make_image

KI, MI = 2**10, 2**20

# Shared base layers: name -> compressed size.
_BASES: dict[str, int] = {
    "debian-bookworm-slim": 28 * MI + 240 * KI,
    "debian-bookworm": 48 * MI + 500 * KI,
    "buildpack-deps-curl": 23 * MI + 600 * KI,
    "buildpack-deps-scm": 61 * MI + 400 * KI,
    "buildpack-deps": 202 * MI + 700 * KI,
    "alpine-3.20": 3 * MI + 540 * KI,
    "distroless-static": 700 * KI,
}

# image -> layers, each a shared base name or an own size in bytes.
_IMAGES: dict[str, list[str | int]] = {
    "registry.k8s.io/pause:3.10": [320 * KI],
    "registry.k8s.io/pause:3.9": [312 * KI],
    "busybox:1.36": [2 * MI + 150 * KI],
    "busybox:1.37": [2 * MI + 160 * KI],
    "alpine:3.20": ["alpine-3.20"],
    "nginx:1.27": ["debian-bookworm-slim", 41 * MI + 800 * KI, 627, 956, 403, 1210, 1400],
    "nginx:1.27-alpine": [
        "alpine-3.20",
        1 * MI + 800 * KI,
        627,
        956,
        403,
        1210,
        1400,
        14 * MI + 900 * KI,
    ],
    "redis:7.4": [
        "debian-bookworm-slim",
        1100,
        1 * MI + 200 * KI,
        1 * MI + 400 * KI,
        12 * MI + 100 * KI,
        98,
        575,
    ],
    "postgres:16": [
        "debian-bookworm-slim",
        1100,
        4 * MI + 400 * KI,
        1 * MI + 300 * KI,
        8 * MI + 100 * KI,
        1 * MI + 200 * KI,
        116,
        3200,
        105 * MI,
        9600,
        129,
        171,
        4700,
        185,
    ],
    "python:3.12-slim": ["debian-bookworm-slim", 3 * MI + 400 * KI, 12 * MI + 600 * KI, 249],
    "python:3.12": [
        "debian-bookworm",
        "buildpack-deps-curl",
        "buildpack-deps-scm",
        "buildpack-deps",
        6 * MI + 200 * KI,
        24 * MI + 800 * KI,
        249,
    ],
    "node:22": [
        "debian-bookworm",
        "buildpack-deps-curl",
        "buildpack-deps-scm",
        "buildpack-deps",
        3400,
        48 * MI + 100 * KI,
        1 * MI + 300 * KI,
        448,
    ],
    "golang:1.23": [
        "debian-bookworm",
        "buildpack-deps-curl",
        "buildpack-deps-scm",
        "buildpack-deps",
        66 * MI + 900 * KI,
        126,
    ],
    "registry.k8s.io/coredns/coredns:v1.11.3": ["distroless-static", 15 * MI + 800 * KI],
    "registry.k8s.io/kube-proxy:v1.31.0": [27 * MI + 500 * KI, 400 * KI],
    "registry.k8s.io/metrics-server/metrics-server:v0.7.2": [
        "distroless-static",
        18 * MI + 900 * KI,
    ],
    "quay.io/prometheus/prometheus:v2.54.1": [
        1 * MI + 100 * KI,
        500 * KI,
        59 * MI + 200 * KI,
        56 * MI + 600 * KI,
        12 * KI,
        150,
        1700,
    ],
    "grafana/grafana:11.2.0": [
        "alpine-3.20",
        9 * MI + 300 * KI,
        400,
        2 * MI,
        98 * MI,
        14 * MI + 200 * KI,
        280,
    ],
    "ghcr.io/stefanprodan/podinfo:6.7.0": ["alpine-3.20", 11 * MI + 500 * KI, 210, 4100],
}


# A moving tag names the same image as the version it points at (same manifest, config and
# layers), as on the real registries: pulling nginx:latest after nginx:1.27 downloads nothing.
_ALIASES: dict[str, str] = {
    "busybox:latest": "busybox:1.37",
    "alpine:latest": "alpine:3.20",
    "nginx:latest": "nginx:1.27",
}


def bundled_images() -> list[SimImage]:
    images = _versioned_images()
    by_name = {str(image.ref): image for image in images}
    for alias, target in _ALIASES.items():
        ref = parse_normalized(alias).with_default_tag()
        images.append(replace(by_name[str(parse_normalized(target).with_default_tag())], ref=ref))
    return images


def _versioned_images() -> list[SimImage]:
    images = []
    for name, layers in _IMAGES.items():
        ref = parse_normalized(name).with_default_tag()
        images.append(
            make_image(
                ref,
                [
                    (_BASES[layer], derived_digest("kubesim-bundled-base", layer))
                    if isinstance(layer, str)
                    else (layer, None)
                    for layer in layers
                ],
            )
        )
    return images


def bundled_catalogue() -> Catalogue:
    return Catalogue(bundled_images())
