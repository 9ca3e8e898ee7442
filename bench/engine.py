"""`make bench` (engine part): simulated pulls per wall-second, the whole command and the engine.

Workload: a rollout over N nodes, 10 pods per node created one second apart, each pod with 2
containers (8 images with a shared base layer; 1 container per pod for the 100,000-node run, so
it is one million pulls), 50 ms registry latency, 1 Gbit/s node downlinks, 20 Gbit/s registry
egress, serial pulls, jittered requeues.

1. The whole `kubesim-images scenario run FILE -o json` command, as a user runs it (a fresh
   process: start-up, parsing, simulation, report, JSON to a file): simulated pulls (Pulling
   events) per wall-second, wall time and peak memory (the child's max RSS). Targets: >= 20,000
   pulls/s at 1,000 and 10,000 nodes; 100,000 nodes in under 60 s and 8 GiB.
2. The engine alone (`run_variant` in this process) against its floor: a bare asyncio
   simulation doing the same number of pulls as one task sleeping once per pull, until that
   pull's start time, on the same virtual-time loop (the least any asyncio simulation could
   do). Target: within 3x the floor at 10,000 nodes. The two are run in alternation, best CPU
   time of each, so the ratio holds on a loaded machine even when wall times do not
   (`--engine-only` runs only this part).

`--baseline DIR` also runs part 1 with another checkout's package (e.g. a worktree of main),
each size's two commands one after the other, so the two trees are compared under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubesim_images
from kubesim_images.clock import run_virtual, sleep_ns
from kubesim_images.scenario.model import load_document
from kubesim_images.scenario.runner import VariantResult, run_variant

MI = 2**20
BASE = "sha256:" + "b" * 64
GIB = 2**30


def rollout(
    nodes: int, pods_per_node: int, parallel: int | None = None, images_per_pod: int = 2
) -> dict[str, Any]:
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
    names = ["app", "sidecar"][:images_per_pod]
    workload = [
        {
            "at": f"{j}s",
            "replicas": nodes,
            "pod": {
                "metadata": {"name": f"svc{j}"},
                "spec": {
                    "containers": [
                        {"name": name, "image": images[(2 * j + k) % 8]["name"]}
                        for k, name in enumerate(names)
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


# -- 1. the whole command ----------------------------------------------------------------------

_PULLS = re.compile(rb'"pulls": (\d+)')


def run_command(
    document: dict[str, Any], package_root: Path | None = None
) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds, pulls, peak RSS bytes) of one `scenario run -o json` in a
    fresh process, with the package from `package_root` (None: this one). CPU time is what to
    compare on a machine other work is loading."""
    env = dict(os.environ)
    if package_root is not None:
        env["PYTHONPATH"] = str(package_root)
    # As installed (pip compiles a package's modules at install), not compiled from source at
    # every start when PYTHONDONTWRITEBYTECODE is set: a tenth of a second, a tenth of the
    # 1,000-node budget. The bytecode goes to __pycache__, which git ignores.
    package = Path(kubesim_images.__file__).parent
    compileall.compile_dir(package_root / package.name if package_root else package, quiet=1)
    with tempfile.TemporaryDirectory(prefix="kubesim-bench-") as tmp:
        scenario = Path(tmp) / "rollout.json"  # JSON is YAML
        scenario.write_text(json.dumps(document), encoding="utf-8")
        output = Path(tmp) / "out.json"
        command = [sys.executable, "-m", "kubesim_images", "scenario", "run", str(scenario)]
        with output.open("wb") as sink:
            started = time.perf_counter()
            child = subprocess.Popen(
                [*command, "-o", "json"], stdout=sink, env=env, cwd=package_root or None
            )
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise SystemExit(f"scenario run failed with exit code {child.returncode}")
        with output.open("rb") as f:
            head = f.read(4096)  # the summary comes first
        match = _PULLS.search(head)
        if match is None:
            raise SystemExit("no pull count in the output's summary")
        cpu = usage.ru_utime + usage.ru_stime
        return wall, cpu, int(match.group(1)), usage.ru_maxrss * 1024


# -- 2. the engine against its floor -----------------------------------------------------------


async def _floor(starts: list[int]) -> int:
    done = 0

    async def pull(at: int) -> None:
        nonlocal done
        await sleep_ns(at)
        done += 1

    # One task per pull (the engine has at least that), each sleeping once, until its start.
    await asyncio.gather(*(pull(at) for at in starts))
    return done


def cpu_time(fn: Callable[[], Any]) -> tuple[float, Any]:
    """The CPU time of one call, and its value. The collector's leftovers are cleared first, so
    no run pays for the one before it."""
    gc.collect()
    started = time.process_time()
    value = fn()
    return time.process_time() - started, value


def engine_vs_floor(nodes: int, repeats: int) -> tuple[int, float, float]:
    """The least CPU time of `repeats` engine runs and of as many floor runs, alternated: on a
    shared machine one run's time depends on what else ran meanwhile, and alternating lets
    the engine and its floor meet the same quiet and busy spells."""
    spec = load_document(rollout(nodes, 10)).variants[0]
    result: VariantResult
    cpu, result = cpu_time(lambda: run_variant(spec))
    starts = [e.t for e in result.events if e.reason.value == "Pulling"]
    pulls = result.pulls
    del result  # freed before the next run is timed, not during it
    floor_cpu, done = cpu_time(lambda: run_virtual(_floor(starts)))
    assert done == pulls == len(starts)
    for _ in range(repeats - 1):
        cpu = min(cpu, cpu_time(lambda: run_variant(spec).pulls)[0])
        floor_cpu = min(floor_cpu, cpu_time(lambda: run_virtual(_floor(starts)))[0])
    return pulls, cpu, floor_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs of the engine and of its floor, alternated"
    )
    parser.add_argument(
        "--largest", type=int, default=100_000, help="nodes in the largest run (0: skip it)"
    )
    parser.add_argument(
        "--engine-only", action="store_true", help="skip the whole commands (part 1)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout whose package also runs the whole command, side by side (e.g. main)",
    )
    args = parser.parse_args()

    if not args.engine_only:
        print("whole command: kubesim-images scenario run FILE -o json (10 pods per node)")
        print(
            f"{'' if args.baseline is None else ' ' * 9}{'nodes x pods':<14} {'pulls':>9} {'wall s':>8} {'pulls/s':>9} {'CPU s':>8} "
            f"{'pulls/CPU-s':>11} {'peak RSS':>9}  target"
        )
    runs = [(1_000, 2, "pulls/s >= 20,000"), (10_000, 2, "pulls/s >= 20,000")]
    if args.largest:
        runs.append((args.largest, 1, "< 60 s and < 8 GiB"))
    trees: list[tuple[str, Path | None]] = [("", None)]
    if args.baseline is not None:
        trees = [("baseline ", args.baseline.resolve()), ("this     ", None)]
    for nodes, per_pod, target in [] if args.engine_only else runs:
        for label, root in trees:
            wall, cpu, pulls, rss = run_command(
                rollout(nodes, 10, images_per_pod=per_pod), package_root=root
            )
            print(
                f"{label}{f'{nodes:,} x 10':<14} {pulls:>9,} {wall:>8.2f} {pulls / wall:>9,.0f} "
                f"{cpu:>8.2f} {pulls / cpu:>11,.0f} {rss / GIB:>7.2f}Gi  {target}",
                flush=True,
            )
    if not args.engine_only:
        print()
    print("engine alone (run_variant) against one asyncio task sleeping once per pull")
    print(
        f"{'nodes x pods':<14} {'pulls':>9} {'CPU s':>8} {'pulls/s':>9} {'floor s':>8} {'x floor':>8}"
    )
    for nodes in (1_000, 10_000):
        pulls, cpu, floor_cpu = engine_vs_floor(nodes, args.repeats)
        print(
            f"{f'{nodes:,} x 10':<14} {pulls:>9,} {cpu:>8.2f} {pulls / cpu:>9,.0f} "
            f"{floor_cpu:>8.2f} {cpu / floor_cpu:>8.2f}"
        )


if __name__ == "__main__":
    main()
