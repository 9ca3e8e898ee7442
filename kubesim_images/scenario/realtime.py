"""Real registries behind a scenario's nodes (`registry: {type: oci}`, run with --real-time).

Each node gets its own content store (nodes do not share disks, so each pulls what it lacks)
in the run's temporary directory, its own OCI client, and a `Downlink` at `nodes.bandwidth`
enforced on the real downloads. `stats` sums what the registries saw for the report's
`summary.registry`: requests, status codes, bytes fetched and retries. `run_real_time` runs a
variant on the wall clock, from 0 like virtual time.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from kubesim_images.clock import WallClock
from kubesim_images.contentstore import ContentStore
from kubesim_images.oci.backend import OciRegistry
from kubesim_images.oci.config import OciRegistryConfig
from kubesim_images.oci.downlink import Downlink

_T = TypeVar("_T")


class _WallTimeLoop(asyncio.SelectorEventLoop):
    """The wall clock, counted from the start of the run as virtual time is: pods are created
    at their `at` and reported times read the same in both modes."""

    def __init__(self) -> None:
        super().__init__()
        self._start = super().time()

    def time(self) -> float:
        return super().time() - self._start


def run_real_time(main: Coroutine[Any, Any, _T]) -> _T:
    with asyncio.Runner(loop_factory=_WallTimeLoop) as runner:
        return runner.run(main)


class RealRegistries:
    def __init__(self, config: OciRegistryConfig, workdir: Path, node_bandwidth: float) -> None:
        self._config = config
        self._workdir = workdir
        self._bandwidth = node_bandwidth
        self._backends: dict[str, OciRegistry] = {}

    def backend(self, node: str) -> OciRegistry:
        clock = WallClock(asyncio.get_running_loop())
        downlink = None if math.isinf(self._bandwidth) else Downlink(self._bandwidth)
        backend = OciRegistry(
            self._config,
            # discard: verified, counted and dropped, so nothing is worth an fsync
            ContentStore(self._workdir / node, durable=self._config.store == "keep"),
            now=lambda: clock.epoch(clock.now_ns()),
            downlink=downlink,
        )
        self._backends[node] = backend
        return backend

    @property
    def bytes_fetched(self) -> int:
        return sum(b.bytes_fetched for b in self._backends.values())

    def stats(self) -> dict[str, Any]:
        codes: Counter[int] = Counter()
        for backend in self._backends.values():
            codes.update(backend.client.status_codes)
        return {
            "requests": sum(b.client.requests for b in self._backends.values()),
            "statusCodes": {str(code): n for code, n in sorted(codes.items())},
            "bytes": self.bytes_fetched,
            "retries": sum(b.client.retries for b in self._backends.values()),
        }

    async def close(self) -> None:
        for backend in self._backends.values():
            await backend.close()
            backend.content.close()
