"""`make bench`: how fast the engine simulates, against the floor of a bare asyncio loop.

Workload: a 1,000-node rollout (4 pods per node, 2 containers each, 8 images with shared base
layers, 50 ms registry latency, 1 Gbit/s node downlinks, 20 Gbit/s registry egress, serial
pulls). We report simulated pulls (Pulling events) per wall-second, and the ratio of our wall
time to a bare asyncio loop that does the same number of pulls as one task sleeping once per
pull on the same virtual-time loop (the floor: the least any asyncio simulation could do).
Both run in this process, side by side, best of several repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

from kubesim_images.clock import run_virtual
from kubesim_images.scenario.model import load_document
from kubesim_images.scenario.report import summary
from kubesim_images.scenario.runner import run_variant

MI = 2**20
BASE = "sha256:" + "b" * 64


def rollout(nodes: int, pods_per_node: int, parallel: int | None) -> dict[str, Any]:
    images = [
        {
            "name": f"registry.example.com/team/app{i}:v1",
            "layers": [{"size": 30 * MI, "digest": BASE}, {"size": (10 + 5 * i) * MI}],
        }
        for i in range(8)
    ]
    kubelet: dict[str, Any] = {"registryPullQPS": 0}
    if parallel is None:
        kubelet["serializeImagePulls"] = True
    else:
        kubelet.update(serializeImagePulls=False, maxParallelImagePulls=parallel)
    workload = [
        {
            "at": f"{j}s",
            "replicas": nodes,
            "pod": {
                "metadata": {"name": f"svc{j}"},
                "spec": {
                    "containers": [
                        {"name": "app", "image": images[(2 * j) % 8]["name"]},
                        {"name": "sidecar", "image": images[(2 * j + 1) % 8]["name"]},
                    ]
                },
            },
        }
        for j in range(pods_per_node)
    ]
    return {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "Scenario",
        "metadata": {"name": "bench-rollout"},
        "spec": {
            "seed": 1,
            "duration": "2h",
            "kubelet": kubelet,
            "sync": {"errorRequeue": "10s", "jitterFactor": 0.5},
            "nodes": {"count": nodes, "bandwidth": "1Gbps"},
            "registry": {"latency": "50ms", "bandwidth": "20Gbps", "images": images},
            "workload": workload,
        },
    }


async def _floor(delays: list[float]) -> int:
    done = 0

    async def pull(delay: float) -> None:
        nonlocal done
        await asyncio.sleep(delay)
        done += 1

    await asyncio.gather(*(pull(d) for d in delays))
    return done


def best_of(repeats: int, fn: Any) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods-per-node", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(f"engine: {args.nodes}-node rollout, {args.pods_per_node} pods/node, 2 images/pod")
    print(
        f"{'variant':<12} {'pulls':>7} {'wall s':>8} {'pulls/s':>10} {'floor s':>8} "
        f"{'x floor':>8} {'p99 ready':>10}"
    )
    for label, parallel in (("serial", None), ("parallel-4", 4)):
        spec = load_document(rollout(args.nodes, args.pods_per_node, parallel)).variants[0]
        wall, result = best_of(args.repeats, lambda spec=spec: run_variant(spec))
        pulls = summary(result)["pulls"]
        delays = [e.t for e in result.events if e.reason.value == "Pulling"]
        floor_wall, floor_done = best_of(
            args.repeats, lambda delays=delays: run_virtual(_floor(delays))
        )
        assert floor_done == pulls
        p99 = summary(result)["imagesReady"]["p99"]
        print(
            f"{label:<12} {pulls:>7} {wall:>8.3f} {pulls / wall:>10,.0f} {floor_wall:>8.3f} "
            f"{wall / floor_wall:>8.2f} {p99:>9.1f}s"
        )


if __name__ == "__main__":
    main()
