"""The daemon's /debug documents: the pull queue and image GC as they are now.

Plain dicts from a node's state, for operators (`curl /debug/pulls`); no kind of the API.
`?node=NAME` picks one of several simulated nodes (default: the first).
"""

from __future__ import annotations

from typing import Any

from kubesim_images.daemon.cluster import Cluster
from kubesim_images.daemon.kube import not_found
from kubesim_images.node import Node
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
    node = _node(cluster, name)
    now = cluster.clock.now_ns()
    puller = node.puller

    def entry(e: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "pullId": e.pull_id,
            "image": e.image,
            "pod": e.pod,
            "reference": e.ref.pull_ref,
            "queuedSeconds": round(((e.started_at or now) - e.enqueued_at) / 1e9, 3),
        }
        if e.started_at is not None:
            doc["runningSeconds"] = round((now - e.started_at) / 1e9, 3)
            progress = puller.progress(e.pull_id)
            if progress is not None:
                done, total = progress
                doc.update(
                    bytesDone=int(done),
                    bytesTotal=total,
                    percent=round(100 * done / total, 1) if total else 100.0,
                )
        return doc

    backoff = []
    for key, item in sorted(node.backoff.entries().items()):
        remaining = item.backoff - (now - item.last_update)
        uid, _, image = key.partition("_")
        backoff.append(
            {
                "key": key,
                "podUID": uid,
                "image": image,
                "backoffSeconds": item.backoff / 1e9,
                "lastUpdate": cluster.clock.rfc3339(item.last_update),
                "inBackOff": remaining > 0,
                "remainingSeconds": round(max(0, remaining) / 1e9, 3),
            }
        )
    return {
        "node": node.name,
        "concurrency": node.kubelet.pull_concurrency,
        "inFlight": [entry(e) for e in puller.in_flight.values()],
        "waiting": [entry(e) for e in puller.waiting.values()],
        "backoff": backoff,
    }


def gc(cluster: Cluster, name: str | None = None) -> dict[str, Any]:
    """Image GC: the policy, the image filesystem now, totals and the last runs."""
    node = _node(cluster, name)
    image_gc = node.gc
    store = node.store
    fs = store.image_fs_stats()
    policy = image_gc.policy
    return {
        "node": node.name,
        "policy": {
            "imageGCHighThresholdPercent": policy.high_threshold_percent,
            "imageGCLowThresholdPercent": policy.low_threshold_percent,
            "imageMinimumGCAge": format_duration_ns(policy.min_age),
            "imageMaximumGCAge": format_duration_ns(policy.max_age),
            "enabled": policy.enabled,
        },
        "imageFs": {"capacity": fs.capacity, "used": store.usage, "available": fs.available},
        "runs": image_gc.runs,
        "imagesGarbageCollected": image_gc.images_collected,
        "bytesFreed": image_gc.bytes_freed,
        "rePulls": store.re_pulls,
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
