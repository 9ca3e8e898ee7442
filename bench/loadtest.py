"""`make bench` (load): how much real pull load one process generates, against skopeo.

A CNCF distribution registry (Debian `docker-registry`) on loopback is seeded with a 3-layer
image (random, uncompressed tars). Then, in the same run:

- one process runs `scenario run --real-time` (in-process, the same code) with `registry:
  {type: oci, store: discard}`: NODES simulated nodes, one pod each, parallel pulls, no
  downlink limit, so every node pulls the whole image once, verifying every blob and keeping
  none. We report pulls per second and bytes per second over the run's wall time, and our
  CPU seconds against that wall time (and the registry's): near 1 CPU-second per second means
  this process is CPU-bound, well under means it waits on the network or the registry;
- the same NODES pulls as `skopeo copy docker://… dir:…` processes, PARALLEL at a time
  (skopeo also verifies digests; it writes the layers to a directory, which we cannot turn
  off), and the ratio of our pulls per second to theirs;
- the model beside a real run (`--compare`): 2 nodes pulling a 2-layer image through a 4 MiB/s
  downlink for real, and in virtual time against a model of the registry made from what it
  lists; image-ready times side by side (the tolerance docs/load-testing.md states).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pull import MI, REGISTRY, start_registry, write_image

from kubesim_images.scenario.model import load_document
from kubesim_images.scenario.report import to_json
from kubesim_images.scenario.runner import run_scenario


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _schedstat() -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of this process's main thread:
    on a shared machine the second is what tells "no CPU to be had" from "waiting on I/O"."""
    on_cpu, waiting, _ = Path("/proc/thread-self/schedstat").read_text().split()
    return int(on_cpu) / 1e9, int(waiting) / 1e9


def _scenario(name: str, spec: dict[str, Any]) -> Any:
    doc = {"apiVersion": "kubesim.io/v1alpha1", "kind": "Scenario",
           "metadata": {"name": name}, "spec": spec}  # fmt: skip
    return load_document(doc, source=f"{name}.yaml")


def _workload(image: str, replicas: int) -> list[dict[str, Any]]:
    return [{"at": "0s", "replicas": replicas, "pod": {"metadata": {"name": "p"},
             "spec": {"containers": [{"name": "c", "image": image}]}}}]  # fmt: skip


def ours(image: str, nodes: int, registry_pid: int) -> dict[str, float]:
    scenario = _scenario("load", {
        "duration": "600s",
        "nodes": {"count": nodes},
        "kubelet": {"serializeImagePulls": False},
        "registry": {"type": "oci", "platform": "linux/amd64", "store": "discard"},
        "workload": _workload(image, nodes),
    })  # fmt: skip
    registry_cpu = _cpu_seconds(registry_pid)
    sched = _schedstat()
    cpu, wall = time.process_time(), time.perf_counter()
    [variant] = to_json(run_scenario(scenario, real_time=True))["variants"]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = _schedstat()
    summary = variant["summary"]
    if summary["podsReady"] != nodes or summary["failedPulls"]:
        sys.exit(f"the load run failed: {summary}")
    return {
        "pulls": summary["pulls"],
        "bytes": summary["registry"]["bytes"],
        "wall": wall,
        "cpu": cpu,
        "main_cpu": after[0] - sched[0],
        "runqueue": after[1] - sched[1],
        "registry_cpu": _cpu_seconds(registry_pid) - registry_cpu,
    }


def skopeo(binary: str, image: str, pulls: int, parallel: int, work: Path) -> float:
    def one(index: int) -> None:
        dest = work / f"skopeo-{index}"
        subprocess.run(
            [binary, "copy", "-q", "--src-tls-verify=false", f"docker://{image}", f"dir:{dest}"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        shutil.rmtree(dest)

    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, range(pulls)))
    return time.perf_counter() - start


def model_vs_real(image: str) -> dict[str, list[float]]:
    """`--compare`: the real run and its model (made from what the registry lists)."""
    real = _scenario("real", {
        "duration": "60s",
        "nodes": {"count": 2, "bandwidth": "4Mi"},
        "kubelet": {"serializeImagePulls": True},
        "workload": _workload(image, 2),
        "registry": {"type": "oci", "platform": "linux/amd64", "store": "discard"},
    })  # fmt: skip
    document = to_json(run_scenario(real, real_time=True, compare=True))
    [ran], [model] = document["variants"], document["virtual"]["variants"]
    return {
        name: [p["imagesReadyAt"] - p["createdAt"] for p in variant["pods"]]
        for name, variant in (("real", ran), ("virtual", model))
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=100, help="pulls (one node each)")
    parser.add_argument("--parallel", type=int, default=8, help="skopeo processes at a time")
    parser.add_argument("--quick", action="store_true", help="a smaller image (a smoke run)")
    args = parser.parse_args()
    binary = shutil.which("skopeo")
    if binary is None or not Path(REGISTRY).exists():
        sys.exit(
            "bench/loadtest.py needs Debian's docker-registry and skopeo (.ci/run installs them)"
        )
    mib = [1, 1, 1] if args.quick else [4, 3, 1]
    with tempfile.TemporaryDirectory(prefix="kubesim-bench-load-") as tmp:
        work = Path(tmp)
        layout = work / "layout"
        write_image(layout, "load", mib)
        write_image(layout, "small", [1, 1])
        registry, host = start_registry(work)
        try:
            for tag in ("load", "small"):
                subprocess.run(
                    [binary, "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:{tag}",
                     f"docker://{host}/bench/{tag}:v1"], check=True,
                )  # fmt: skip
            image = f"{host}/bench/load:v1"
            ours(image, min(args.nodes, 10), registry.pid)  # warm the registry's page cache
            run = ours(image, args.nodes, registry.pid)
            skopeo_wall = skopeo(binary, image, args.nodes, args.parallel, work)
            compared = [model_vs_real(f"{host}/bench/small:v1") for _ in range(3)]
        finally:
            registry.terminate()
            registry.wait(timeout=10)
    pulls_s = run["pulls"] / run["wall"]
    print(f"one process, {args.nodes} simulated nodes each pulling a {sum(mib)} MiB image "
          f"({len(mib)} layers), store: discard, loopback registry:")  # fmt: skip
    print(f"  {run['pulls']} pulls in {run['wall']:.2f} s: {pulls_s:.1f} pulls/s, "
          f"{run['bytes'] / run['wall'] / MI:.0f} MiB/s")  # fmt: skip
    share = run["cpu"] / run["wall"]
    # The event loop's thread is either running, runnable (wanting a CPU others hold) or
    # waiting on sockets; the first two together are the CPU-bound part of the wall time.
    cpu_bound = (run["main_cpu"] + run["runqueue"]) / run["wall"]
    bound = "CPU-bound" if cpu_bound > 0.8 else "network/registry-bound"
    print(f"  our CPU {run['cpu']:.2f} s = {share:.2f} of the wall time; the event loop's "
          f"thread ran {run['main_cpu']:.2f} s and waited {run['runqueue']:.2f} s for a CPU: "
          f"{cpu_bound:.2f} of the wall time wanting a CPU, so {bound}; "
          f"the registry's CPU {run['registry_cpu']:.2f} s")  # fmt: skip
    skopeo_s = args.nodes / skopeo_wall
    print(f"  {args.nodes} x skopeo copy, {args.parallel} at a time: {skopeo_wall:.2f} s, "
          f"{skopeo_s:.1f} pulls/s; ratio ours/skopeo: {pulls_s / skopeo_s:.2f}x")  # fmt: skip
    diffs = [r - v for c in compared for r, v in zip(c["real"], c["virtual"], strict=True)]
    print("model vs real, 2 nodes, 2 MiB image, 4 MiB/s downlinks, image ready (s), 3 runs:")
    for c in compared:
        print(f"  virtual {[round(x, 3) for x in c['virtual']]}  "
              f"real {[round(x, 3) for x in c['real']]}")  # fmt: skip
    print(f"  real - virtual: min {min(diffs):+.3f} s, median {statistics.median(diffs):+.3f} s, "
          f"max {max(diffs):+.3f} s (stated tolerance: -0.2 s .. +0.75 s)")  # fmt: skip


if __name__ == "__main__":
    main()
