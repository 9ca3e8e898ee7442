"""`make bench` (API part): GET pod throughput and latency while 500 simulated pulls are in flight.

The daemon runs as a real process (`kubesim-images serve`) with 500 pods whose 500 distinct
images crawl down a slow downlink, so every pull stays in flight for the whole measurement.
A client in this process then GETs one pod over keep-alive connections for a fixed time and
reports requests/s and p50/p99 latency. The floor is a bare aiohttp handler in its own process
returning the same pod JSON, measured the same way in the same run; we report our throughput
as a share of it (target >= 50%).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

BARE_SERVER = r"""
import sys
from aiohttp import web
body = open(sys.argv[2], "rb").read()
async def handler(request):
    return web.Response(body=body, content_type="application/json")
app = web.Application()
app.router.add_get("/api/v1/namespaces/default/pods/{name}", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(url: str, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < end:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


async def load(url: str, seconds: float, connections: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while time.monotonic() < stop:
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"GET {url} -> {response.status}")
                latencies.append(time.perf_counter() - started)

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - began
    return len(latencies) / elapsed, latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values)


async def main_async(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="kubesim-bench-"))
    images = [
        {"name": f"registry.example.com/bench/app{i}:v1", "layers": [{"size": "200Mi"}]}
        for i in range(args.pulls)
    ]
    (work / "daemon.yaml").write_text(
        json.dumps(
            {
                "apiVersion": "kubesim.io/v1alpha1",
                "kind": "DaemonConfig",
                "node": {"bandwidth": "10Mi"},
                "kubelet": {"serializeImagePulls": False, "registryPullQPS": 0},
                "registry": {"latency": "0s", "images": images},
            }
        )
    )
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubesim_images",
            "--log-level",
            "warning",
            "serve",
            "--config",
            str(work / "daemon.yaml"),
            "--port",
            str(port),
            "--state-dir",
            str(work / "state"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bare = None
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_ready(f"{base}/readyz")
        async with aiohttp.ClientSession() as session:
            for i in range(args.pulls):
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"p{i}"},
                    "spec": {"containers": [{"name": "app", "image": images[i]["name"]}]},
                }
                async with session.post(
                    f"{base}/api/v1/namespaces/default/pods", json=pod
                ) as response:
                    assert response.status == 201, await response.text()
            await asyncio.sleep(1.0)
            async with session.get(f"{base}/debug/pulls") as response:
                in_flight = len((await response.json())["inFlight"])
            async with session.get(f"{base}/api/v1/namespaces/default/pods/p0") as response:
                body = await response.read()
        (work / "pod.json").write_bytes(body)
        bare_port = free_port()
        bare = subprocess.Popen(
            [sys.executable, "-c", BARE_SERVER, str(bare_port), str(work / "pod.json")]
        )
        await wait_ready(f"http://127.0.0.1:{bare_port}/api/v1/namespaces/default/pods/p0")

        # Alternate the two servers and keep each one's best round, so neither profits from
        # going second (warm caches) or suffers from a noisy moment.
        ours: list[tuple[float, list[float]]] = []
        bare_runs: list[tuple[float, list[float]]] = []
        for _ in range(args.rounds):
            ours.append(
                await load(
                    f"{base}/api/v1/namespaces/default/pods/p0", args.seconds, args.connections
                )
            )
            bare_runs.append(
                await load(
                    f"http://127.0.0.1:{bare_port}/api/v1/namespaces/default/pods/p0",
                    args.seconds,
                    args.connections,
                )
            )
        ours_rps, ours_lat = max(ours, key=lambda run: run[0])
        bare_rps, bare_lat = max(bare_runs, key=lambda run: run[0])
        print(
            f"api: GET pod ({len(body)} bytes), {args.connections} connections, "
            f"best of {args.rounds} rounds of {args.seconds:.0f}s each, {in_flight} simulated pulls "
            "in flight"
        )
        print(f"{'server':<22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        for name, rps, lat in (
            ("kubesim-images serve", ours_rps, ours_lat),
            ("bare aiohttp handler", bare_rps, bare_lat),
        ):
            print(
                f"{name:<22} {rps:>9,.0f} {statistics.median(lat) * 1e3:>8.2f} "
                f"{p99(lat) * 1e3:>8.2f}"
            )
        print(f"ratio: {ours_rps / bare_rps:.0%} of the bare handler (target >= 50%)")
    finally:
        for proc in (daemon, bare):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pulls", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
