"""Image pull policy: defaulting at Pod creation, admission, and the pull decision.

Defaulting mirrors `SetDefaults_Container` (pkg/apis/core/v1/defaults.go): an omitted policy
becomes `Always` when the effective tag is `latest` (written, or implied by neither tag nor
digest) and `IfNotPresent` otherwise, including a digest alone. It is applied once when a Pod is
created and stored, never recomputed. The decision mirrors `shouldPullImage` in the kubelet's
image manager.
"""

from __future__ import annotations

import enum

from kubesim_images.errors import InvalidReferenceError
from kubesim_images.reference import parse_normalized


class PullPolicy(enum.StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class Decision(enum.StrEnum):
    """What the kubelet does with one container image, before any back-off check."""

    PULL = "pull"
    ALREADY_PRESENT = "already-present"
    NEVER_PULL_ERROR = "never-pull-error"


def parse_policy(value: str) -> PullPolicy:
    """A policy as written in a Pod spec; the error lists the supported values as the API does."""
    try:
        return PullPolicy(value)
    except ValueError:
        supported = ", ".join(f'"{p.value}"' for p in PullPolicy)
        raise ValueError(f'Unsupported value: "{value}": supported values: {supported}') from None


def default_pull_policy(image: str) -> PullPolicy:
    """`SetDefaults_Container`: `Always` for `latest` (written or implied), else `IfNotPresent`.

    An image that does not parse has no tag to look at, so it defaults to `IfNotPresent`,
    exactly as the API server does (validation is left to the kubelet's InspectFailed).
    """
    try:
        ref = parse_normalized(image)
    except InvalidReferenceError:
        return PullPolicy.IF_NOT_PRESENT
    return PullPolicy.ALWAYS if ref.implied_latest else PullPolicy.IF_NOT_PRESENT


def effective_policy(
    image: str, written: PullPolicy | None, *, always_pull_images: bool = False
) -> PullPolicy:
    """The policy stored at creation: admission (AlwaysPullImages) wins, then what was written."""
    if always_pull_images:
        return PullPolicy.ALWAYS
    return written if written is not None else default_pull_policy(image)


def decide(policy: PullPolicy, present: bool) -> Decision:
    """`shouldPullImage` plus the two outcomes when no pull happens."""
    if policy is PullPolicy.ALWAYS or (policy is PullPolicy.IF_NOT_PRESENT and not present):
        return Decision.PULL
    if present:
        return Decision.ALREADY_PRESENT
    return Decision.NEVER_PULL_ERROR
