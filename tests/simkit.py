"""Test kit: scenario documents built in code and run in virtual time."""

from __future__ import annotations

import copy
from typing import Any

from kubesim_images.scenario.model import load_document
from kubesim_images.scenario.runner import VariantResult, run_variant

MI = 2**20


def scenario(spec: dict[str, Any], name: str = "test") -> dict[str, Any]:
    """A scenario document with exact timing (no jitter) unless the spec says otherwise."""
    spec = copy.deepcopy(spec)
    spec.setdefault("sync", {"errorRequeue": "10s", "jitterFactor": 0})
    spec.setdefault("kubelet", {"registryPullQPS": 0})
    return {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "Scenario",
        "metadata": {"name": name},
        "spec": spec,
    }


def pod(
    name: str, *images: str, policy: str | None = None, init: tuple[str, ...] = ()
) -> dict[str, Any]:
    def container(prefix: str, index: int, image: str) -> dict[str, Any]:
        c: dict[str, Any] = {"name": f"{prefix}{index}", "image": image}
        if policy:
            c["imagePullPolicy"] = policy
        return c

    spec: dict[str, Any] = {"containers": [container("c", i, img) for i, img in enumerate(images)]}
    if init:
        spec["initContainers"] = [container("init", i, img) for i, img in enumerate(init)]
    return {"metadata": {"name": name}, "spec": spec}


def image(name: str, *sizes_mi: float, digests: dict[int, str] | None = None) -> dict[str, Any]:
    layers = []
    for index, size in enumerate(sizes_mi):
        layer: dict[str, Any] = {"size": int(size * MI)}
        if digests and index in digests:
            layer["digest"] = digests[index]
        layers.append(layer)
    return {"name": name, "layers": layers}


def simulate(spec: dict[str, Any], variant: int = 0) -> VariantResult:
    return run_variant(load_document(scenario(spec)).variants[variant])


def seconds(ns: int) -> float:
    """Engine nanoseconds as float seconds: exact for any time written with up to 9 decimals,
    since both sides are the float nearest the same decimal."""
    return ns / 1e9


def events(
    result: VariantResult, pod_name: str | None = None, reason: str | None = None
) -> list[tuple[float, str, str]]:
    """(t in seconds, reason, message) of the events, optionally of one pod and one reason."""
    return [
        (seconds(e.t), e.reason.value, e.message)
        for e in result.events
        if (pod_name is None or e.pod == pod_name) and (reason is None or e.reason == reason)
    ]


def ready_at(result: VariantResult) -> dict[str, float | None]:
    return {
        p.pod.name: None if p.images_ready_at is None else seconds(p.images_ready_at)
        for p in result.pods
    }
