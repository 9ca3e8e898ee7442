"""The daemon's /debug documents: the pull queue and image GC as they are now.

Plain dicts from a node's snapshot, for operators (`curl /debug/pulls`); no kind of the API.
`?node=NAME` picks one of several simulated nodes (default: the first).
"""

from __future__ import annotations

from typing import Any

from kubesim_images.daemon.cluster import Cluster
from kubesim_images.daemon.kube import not_found
from kubesim_images.node import Node
from kubesim_images.snapshot import PullView
from kubesim_images.units import format_duration_ns


def _node(cluster: Cluster, name: str | None) -> Node:
    if name is None:
        return cluster.node
    node = cluster.nodes.get(name)
    if node is None:
        raise not_found("nodes", name)
    return node


def pulls(cluster: Cluster, name: str | None = None) -> dict[str, Any]:
    """The pull queue: in flight with progress, waiting, and the back-off entries."""
    now = cluster.clock.now_ns()
    snapshot = _node(cluster, name).snapshot(now)

    def entry(pull: PullView) -> dict[str, Any]:
        started = pull.started_at
        queued = (now if started is None else started) - pull.enqueued_at
        doc: dict[str, Any] = {
            "pullId": pull.pull_id,
            "image": pull.image,
            "pod": pull.pod,
            "reference": pull.reference,
            "queuedSeconds": round(queued / 1e9, 3),
        }
        if started is not None:
            doc["runningSeconds"] = round((now - started) / 1e9, 3)
            done, total = pull.bytes_done, pull.bytes_total
            if done is not None and total is not None:
                doc.update(
                    bytesDone=done,
                    bytesTotal=total,
                    percent=round(100 * done / total, 1) if total else 100.0,
                )
        return doc

    backoff = []
    for item in snapshot.backoff:
        remaining = item.remaining(now)
        backoff.append(
            {
                "key": item.key,
                "podUID": item.pod_uid,
                "image": item.image,
                "backoffSeconds": item.backoff / 1e9,
                "lastUpdate": cluster.clock.rfc3339(item.last_update),
                "inBackOff": remaining > 0,
                "remainingSeconds": round(max(0, remaining) / 1e9, 3),
            }
        )
    return {
        "node": snapshot.node,
        "concurrency": snapshot.pull_concurrency,
        "inFlight": [entry(p) for p in snapshot.in_flight],
        "waiting": [entry(p) for p in snapshot.waiting],
        "backoff": backoff,
    }


def gc(cluster: Cluster, name: str | None = None) -> dict[str, Any]:
    """Image GC: the policy, the image filesystem now, totals and the last runs."""
    snapshot = _node(cluster, name).snapshot()
    image_gc, disk = snapshot.gc, snapshot.disk
    policy = image_gc.policy
    return {
        "node": snapshot.node,
        "policy": {
            "imageGCHighThresholdPercent": policy.high_threshold_percent,
            "imageGCLowThresholdPercent": policy.low_threshold_percent,
            "imageMinimumGCAge": format_duration_ns(policy.min_age),
            "imageMaximumGCAge": format_duration_ns(policy.max_age),
            "enabled": policy.enabled,
        },
        "imageFs": {"capacity": disk.capacity, "used": disk.used, "available": disk.available},
        "runs": image_gc.runs,
        "imagesGarbageCollected": image_gc.images_collected,
        "bytesFreed": image_gc.bytes_freed,
        "rePulls": image_gc.re_pulls,
        "lastRuns": [
            {
                "at": cluster.clock.rfc3339(run.at),
                "usagePercent": run.usage_percent,
                "amountToFree": run.amount_to_free,
                "freed": run.freed,
                "released": run.released,
                "removed": [
                    {"id": r.image_id, "size": r.size, "reason": r.reason.value}
                    for r in run.removed
                ],
                "error": run.error,
            }
            for run in reversed(image_gc.history)
        ],
    }


async def run_gc(cluster: Cluster, name: str | None = None) -> dict[str, Any]:
    """Run image GC now, as its 5-minute loop would (the loop keeps its own schedule); the
    document `gc` answers, the new run first."""
    await _node(cluster, name).gc.collect_now()
    return gc(cluster, name)
