"""The arithmetic of a rolling update, as the deployment controller does it (sans I/O).

pkg/controller/deployment/util and rolling.go decide three numbers per sync: how far the new
ReplicaSet may grow (`maxSurge` above the desired count), how many old pods may go
(`maxUnavailable` below it), and which old ReplicaSets give them up. Surge rounds up and
unavailability rounds down, and both zero would deadlock, so unavailability then becomes 1.
These rules live here as plain functions on counts, so the controller's loop stays thin and a
test can check each rule without pods or HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"


class IntOrStringError(ValueError):
    """A maxSurge/maxUnavailable that is neither an integer nor `N%`."""


def scaled_value(value: object, total: int, *, round_up: bool) -> int:
    """`intstr.GetScaledValueFromIntOrPercent`: an int as it is, `N%` of `total` rounded."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise IntOrStringError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if not value.endswith("%") or not value[:-1].isdigit():
        raise IntOrStringError(f"invalid value for IntOrString: {value!r} is not a percentage")
    # Go computes math.Ceil/Floor(percent * total / 100.0); integer division is the same
    # number without a float's rounding at large counts.
    quotient, remainder = divmod(int(value[:-1]) * total, 100)
    return quotient + 1 if round_up and remainder else quotient


@dataclass(frozen=True, slots=True)
class Fenceposts:
    """How far above and below the desired count a rolling update may go."""

    max_surge: int
    max_unavailable: int


def fenceposts(max_surge: object, max_unavailable: object, replicas: int) -> Fenceposts:
    """`ResolveFenceposts`: surge rounds up, unavailable down; never both zero."""
    surge = scaled_value(max_surge, replicas, round_up=True)
    unavailable = scaled_value(max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        # Neither may be zero at once, or the rollout could not move; validation refuses
        # that when both are given as zero, and percentages of small counts end here.
        unavailable = 1
    return Fenceposts(surge, unavailable)


def max_unavailable(post: Fenceposts, replicas: int) -> int:
    """`MaxUnavailable`: what availability may dip to, never more than the replicas."""
    if replicas == 0:
        return 0
    return min(post.max_unavailable, replicas)


def new_rs_replicas(
    replicas: int, post: Fenceposts, new_rs_spec: int, all_rs_spec: Sequence[int]
) -> int:
    """`NewRSNewReplicas` for RollingUpdate: grow the new set while the total stays within
    replicas + maxSurge, never above the desired count (and down to it when it shrank)."""
    current = sum(all_rs_spec)
    max_total = replicas + post.max_surge
    if current >= max_total:
        return new_rs_spec
    scale_up = min(max_total - current, replicas - new_rs_spec)
    return new_rs_spec + scale_up


@dataclass(frozen=True, slots=True)
class OldSet:
    """An old ReplicaSet as the scale-down decisions see it."""

    name: str
    spec_replicas: int
    available: int


def cleanup_unhealthy(old: Sequence[OldSet], max_cleanup: int) -> dict[str, int]:
    """`cleanupUnhealthyReplicas`: first take pods that are not available anyway, oldest set
    first, at most `max_cleanup`. Returns the new replica count of each set it changes."""
    out: dict[str, int] = {}
    total = 0
    for rs in old:
        if total >= max_cleanup:
            break
        if rs.spec_replicas == 0:
            continue
        unhealthy = rs.spec_replicas - rs.available
        if unhealthy <= 0:
            continue
        count = min(max_cleanup - total, unhealthy)
        out[rs.name] = rs.spec_replicas - count
        total += count
    return out


def scale_down_old(
    old: Sequence[OldSet], available_total: int, min_available: int
) -> dict[str, int]:
    """`scaleDownOldReplicaSetsForRollingUpdate`: take available pods from the oldest sets
    while the deployment keeps at least `min_available`. Returns the new counts."""
    if available_total <= min_available:
        return {}
    budget = available_total - min_available
    out: dict[str, int] = {}
    taken = 0
    for rs in old:
        if taken >= budget:
            break
        if rs.spec_replicas == 0:
            continue
        count = min(rs.spec_replicas, budget - taken)
        out[rs.name] = rs.spec_replicas - count
        taken += count
    return out


def old_scale_down_budget(
    replicas: int, post: Fenceposts, all_rs_spec: int, new_rs_spec: int, new_rs_available: int
) -> int:
    """`reconcileOldReplicaSets`' maxScaledDown: how many old pods may go now without the
    available pods falling below replicas - maxUnavailable, counting the new set's pods that
    are not available yet as if they were missing."""
    min_available = replicas - max_unavailable(post, replicas)
    new_unavailable = new_rs_spec - new_rs_available
    return all_rs_spec - min_available - new_unavailable
