"""`make soak`: the daemon under sustained mixed load, to show nothing leaks and nothing fails.

The daemon runs as a real process on loopback. For `--duration` seconds (default 600):
- `--clients` API clients (default 200), each on its own keep-alive connection, GET a pod,
  LIST pods (plain and as a Table), GET the node and LIST events, with 0-0.5 s between requests;
- `--watches` pod watches (default 500) are held open at once, each closed by the client after
  5-30 s and opened again (so thousands are opened and closed over a run);
- a cycler creates pods (present images, images to pull, a missing image in back-off) and
  deletes each after 5-20 s, keeping about `--pods` (default 40) alive.
Every answer must be the expected 2xx; anything else, a connection error or a /healthz probe
that fails counts as an error. The daemon's RSS and open descriptors are sampled every 10 s.
The report (`reports/soak/soak.json`, and a summary on stdout) gives request counts, p50/p99
latency, errors, watches opened/closed, RSS and fds at start (after a 20 s warm-up) and end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

NS = "/api/v1/namespaces/soak"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
IMAGES = [
    "registry.k8s.io/pause:3.10",  # preloaded: present
    "busybox:1.36",
    "alpine:3.20",
    "nginx:1.27",
    "redis:7.4",
    "registry.example.com/soak/missing:v1",  # in no catalogue: ErrImagePull, then back-off
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_sample(pid: int) -> tuple[int, int]:
    """The process's resident set (bytes) and open descriptors, from /proc."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return rss, sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


def pct(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    if len(values) < 100:
        return max(values)
    return statistics.quantiles(values, n=100)[q - 1]


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    watches_opened: int = 0
    watches_closed: int = 0
    watch_events: int = 0
    pods_created: int = 0
    pods_deleted: int = 0

    def ok(self, kind: str, seconds: float) -> None:
        self.latencies.setdefault(kind, []).append(seconds)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def timed(
    tally: Tally, session: aiohttp.ClientSession, kind: str, method: str, url: str, **kw: Any
) -> Any:
    started = time.perf_counter()
    try:
        async with session.request(method, url, **kw) as response:
            body = await response.read()
            if response.status >= 300:
                tally.error(f"{kind}: HTTP {response.status}")
                return None
            is_json = response.content_type == "application/json"
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.error(f"{kind}: {type(exc).__name__}")
        return None
    tally.ok(kind, time.perf_counter() - started)
    if not is_json:
        return body
    try:
        return json.loads(body, parse_constant=_not_json)
    except ValueError:
        tally.error(f"{kind}: invalid JSON")
        return None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def api_client(base: str, tally: Tally, stop: float, seed: int, pods: list[str]) -> None:
    rng = random.Random(seed)
    connector = aiohttp.TCPConnector(limit=1)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        while time.monotonic() < stop:
            choice = rng.random()
            if choice < 0.4 and pods:
                name = rng.choice(pods)
                url = f"{base}{NS}/pods/{name}"
                started = time.perf_counter()
                try:
                    async with session.get(url) as response:
                        await response.read()
                        # The cycler may have just deleted it: 404 is a right answer.
                        if response.status in (200, 404):
                            tally.ok("get pod", time.perf_counter() - started)
                        else:
                            tally.error(f"get pod: HTTP {response.status}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    tally.error(f"get pod: {type(exc).__name__}")
            elif choice < 0.6:
                await timed(tally, session, "list pods", "GET", f"{base}{NS}/pods")
            elif choice < 0.75:
                headers = {"Accept": TABLE}
                await timed(tally, session, "table", "GET", f"{base}{NS}/pods", headers=headers)
            elif choice < 0.9:
                await timed(tally, session, "get node", "GET", f"{base}/api/v1/nodes")
            else:
                await timed(tally, session, "list events", "GET", f"{base}{NS}/events")
            await asyncio.sleep(rng.uniform(0, 0.5))


async def watcher(base: str, tally: Tally, stop: float, seed: int) -> None:
    rng = random.Random(seed)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < stop:
            lifetime = min(rng.uniform(5, 30), max(0.0, stop - time.monotonic()))
            scope = NS if rng.random() < 0.5 else "/api/v1/namespaces/quiet"
            url = f"{base}{scope}/pods?watch=true&timeoutSeconds=60"
            try:
                async with session.get(url) as response:
                    if response.status != 200:
                        tally.error(f"watch: HTTP {response.status}")
                        await asyncio.sleep(1)
                        continue
                    tally.watches_opened += 1
                    try:
                        async with asyncio.timeout(lifetime):
                            async for _line in response.content:
                                tally.watch_events += 1
                    except TimeoutError:
                        pass
                    tally.watches_closed += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                tally.error(f"watch: {type(exc).__name__}")
                await asyncio.sleep(1)


async def cycler(base: str, tally: Tally, stop: float, target: int, live: list[str]) -> None:
    rng = random.Random(1)
    deadlines: dict[str, float] = {}
    n = 0
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < stop:
            now = time.monotonic()
            for name in [p for p, due in deadlines.items() if due <= now]:
                if await timed(tally, session, "delete pod", "DELETE", f"{base}{NS}/pods/{name}"):
                    tally.pods_deleted += 1
                del deadlines[name]
                live.remove(name)
            if len(deadlines) < target:
                n += 1
                name = f"soak-{n}"
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "labels": {"app": "soak"}},
                    "spec": {
                        "containers": [
                            {"name": f"c{i}", "image": rng.choice(IMAGES)}
                            for i in range(rng.randint(1, 3))
                        ]
                    },
                }
                if await timed(tally, session, "create pod", "POST", f"{base}{NS}/pods", json=pod):
                    tally.pods_created += 1
                    deadlines[name] = now + rng.uniform(5, 20)
                    live.append(name)
            await asyncio.sleep(0.1)
        for name in list(deadlines):  # leave the namespace as it was found
            if await timed(tally, session, "delete pod", "DELETE", f"{base}{NS}/pods/{name}"):
                tally.pods_deleted += 1


async def prober(base: str, tally: Tally, stop: float) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        while time.monotonic() < stop:
            await timed(tally, session, "healthz", "GET", f"{base}/healthz")
            await asyncio.sleep(1)


async def wait_ready(url: str) -> None:
    end = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < end:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="kubesim-soak-"))
    config = {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "DaemonConfig",
        "sync": {"errorRequeue": "2s", "jitterFactor": 0.2},
        "registry": {"latency": "20ms"},
        "node": {"bandwidth": "100Mi"},
        "api": {"maxConnections": args.clients + args.watches + 100},
    }
    (work / "daemon.yaml").write_text(json.dumps(config))
    port = free_port()
    log = (work / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubesim_images",
            "serve",
            "--config",
            str(work / "daemon.yaml"),
            "--port",
            str(port),
            "--state-dir",
            str(work / "state"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    tally = Tally()
    samples: list[dict[str, float]] = []
    try:
        await wait_ready(f"{base}/readyz")
        began = time.monotonic()
        stop = began + args.duration
        live: list[str] = []
        tasks = [asyncio.create_task(cycler(base, tally, stop, args.pods, live))]
        tasks.append(asyncio.create_task(prober(base, tally, stop)))
        tasks += [
            asyncio.create_task(api_client(base, tally, stop, i, live)) for i in range(args.clients)
        ]
        tasks += [
            asyncio.create_task(watcher(base, tally, stop, 10_000 + i)) for i in range(args.watches)
        ]
        while time.monotonic() < stop:
            await asyncio.sleep(min(10.0, max(0.0, stop - time.monotonic())))
            rss, fds = proc_sample(daemon.pid)
            samples.append({"t": round(time.monotonic() - began, 1), "rss": rss, "fds": fds})
            print(
                f"soak t={samples[-1]['t']:>6.0f}s rss={rss / 2**20:.1f}MiB fds={fds} "
                f"requests={sum(len(v) for v in tally.latencies.values())} "
                f"errors={sum(tally.errors.values())} watches={tally.watches_opened}",
                flush=True,
            )
        await asyncio.gather(*tasks)
        daemon.terminate()
        exit_code = daemon.wait(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        log.close()
    warm = [s for s in samples if s["t"] >= args.warmup] or samples
    everything = [x for values in tally.latencies.values() for x in values]
    log_lines = (work / "daemon.log").read_text(errors="replace").splitlines()
    return {
        "durationSeconds": args.duration,
        "clients": args.clients,
        "concurrentWatches": args.watches,
        "requests": len(everything),
        "p50Ms": round(pct(everything, 50) * 1e3, 2),
        "p99Ms": round(pct(everything, 99) * 1e3, 2),
        "byKind": {
            kind: {
                "count": len(values),
                "p50Ms": round(pct(values, 50) * 1e3, 2),
                "p99Ms": round(pct(values, 99) * 1e3, 2),
            }
            for kind, values in sorted(tally.latencies.items())
        },
        "errors": sum(tally.errors.values()),
        "errorKinds": tally.errors,
        "watchesOpened": tally.watches_opened,
        "watchesClosed": tally.watches_closed,
        "watchEvents": tally.watch_events,
        "podsCreated": tally.pods_created,
        "podsDeleted": tally.pods_deleted,
        "rssStartMiB": round(warm[0]["rss"] / 2**20, 1),
        "rssEndMiB": round(samples[-1]["rss"] / 2**20, 1),
        "fdsStart": warm[0]["fds"],
        "fdsEnd": samples[-1]["fds"],
        "daemonErrorLogLines": sum('"level": "error"' in line for line in log_lines),
        "daemonExitCode": exit_code,
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (600)")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--watches", type=int, default=500)
    parser.add_argument("--pods", type=int, default=40)
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before 'start'")
    parser.add_argument("--report", default="reports/soak/soak.json")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    path = Path(args.report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(
        f"soak: {report['durationSeconds']:.0f}s, {report['clients']} clients, "
        f"{report['concurrentWatches']} watches at once ({report['watchesOpened']} opened, "
        f"{report['watchesClosed']} closed), {report['podsCreated']} pods created and "
        f"{report['podsDeleted']} deleted"
    )
    print(
        f"requests {report['requests']}: p50 {report['p50Ms']} ms, p99 {report['p99Ms']} ms; "
        f"errors {report['errors']} {report['errorKinds'] or ''}"
    )
    print(
        f"daemon RSS {report['rssStartMiB']} -> {report['rssEndMiB']} MiB, "
        f"fds {report['fdsStart']} -> {report['fdsEnd']}, error log lines "
        f"{report['daemonErrorLogLines']}, exit code {report['daemonExitCode']}; report: {path}"
    )
    sys.exit(1 if report["errors"] or report["daemonExitCode"] else 0)


if __name__ == "__main__":
    main()
