"""`kubesim-images serve`: the daemon's lifecycle.

Start: open the state store, restore pods, images and back-off, bind the API, then report ready.
Stop (SIGTERM or SIGINT): stop accepting connections, end every open watch (a stop marker, then
the connection aborted after a 1 s grace for a client that stopped reading), give other requests
in flight up to CONNECTION_DRAIN_SECONDS, cancel and await every pod worker (a pull in flight is
abandoned and resumes on the next start, as a kubelet's would), close the store. Every step is
bounded, so the whole drain ends within DRAIN_SECONDS of the signal, whatever clients do.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
from pathlib import Path

from aiohttp import web

from kubesim_images.daemon.api import READY, make_app
from kubesim_images.daemon.cluster import Cluster
from kubesim_images.daemon.config import DaemonConfig
from kubesim_images.logging import get_logger
from kubesim_images.metrics import Metrics
from kubesim_images.state import StateStore

_log = get_logger()
DRAIN_SECONDS = 5.0
# Requests other than watches (those end at once) get this long to finish before they are
# cancelled: well inside DRAIN_SECONDS together with the watch grace and the workers' stop.
CONNECTION_DRAIN_SECONDS = 2.5


class Daemon:
    """One simulated node behind the API; `start` and `stop` own every task it runs."""

    def __init__(
        self,
        config: DaemonConfig,
        state_dir: Path,
        *,
        address: str = "127.0.0.1",
        port: int = 10255,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.tls = tls
        self.state_dir = state_dir
        self.address = address
        self.port = port
        self.token = token
        self.cluster: Cluster | None = None
        self._state: StateStore | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._state = StateStore(self.state_dir)
        metrics = Metrics()
        self.cluster = Cluster(self.config, self._state, metrics)
        app = make_app(
            self.cluster, metrics, token=self.token, max_body_bytes=self.config.max_body_bytes
        )
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=CONNECTION_DRAIN_SECONDS
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.address, self.port, reuse_address=True, ssl_context=self.tls
        )
        await site.start()
        self.cluster.restore()
        app[READY].set()
        bound = self._runner.addresses
        if bound:
            self.port = int(bound[0][1])
        _log.info(
            "serving",
            address=self.address,
            port=self.port,
            node=self.config.node_name,
            state_dir=str(self.state_dir),
            pods=len(self.cluster.pods),
            images=len(self.cluster.node.store),
            config=self.config.source,
            hint=f"kubectl --server {self.url} get pods",
        )

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def stop(self) -> None:
        started = asyncio.get_running_loop().time()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.cluster is not None:
            await self.cluster.stop()
        if self._state is not None:
            self._state.close()
            self._state = None
        _log.info("stopped", seconds=round(asyncio.get_running_loop().time() - started, 3))

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            await stop.wait()
            _log.info("draining", reason="signal")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await asyncio.wait_for(self.stop(), timeout=DRAIN_SECONDS)
