"""`kubesim-images serve`: the daemon's lifecycle.

Start: lock the state directory (one daemon per directory: `state.lock_state_dir`), open the
state store, restore pods, images and back-off, bind the API, then report ready.
Stop (SIGTERM or SIGINT): stop accepting connections, end every open watch (a stop marker, then
the connection aborted after a 1 s grace for a client that stopped reading), give other requests
in flight up to CONNECTION_DRAIN_SECONDS, cancel and await every pod worker (a pull in flight is
abandoned and resumes on the next start, as a kubelet's would), close the store. Every step is
bounded, so the whole drain ends within DRAIN_SECONDS of the signal, whatever clients do.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import ssl
from pathlib import Path

from aiohttp import web

from kubesim_images.daemon.api import READY, make_app
from kubesim_images.daemon.cluster import Cluster
from kubesim_images.daemon.config import DaemonConfig
from kubesim_images.daemon.connections import (
    ConnectionGuard,
    loop_exception_handler,
    server_logger,
)
from kubesim_images.logging import get_logger
from kubesim_images.metrics import Metrics
from kubesim_images.state import StateStore, lock_state_dir

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
        self._listener: asyncio.Server | None = None
        self._lock: int | None = None

    async def start(self) -> None:
        # Before anything is read: a second daemon on this directory must not restore at all.
        self._lock = lock_state_dir(self.state_dir)
        self._state = StateStore(self.state_dir)
        metrics = Metrics()
        self.cluster = Cluster(self.config, self._state, metrics)
        limits = self.config.limits
        guard: ConnectionGuard | None = None

        def request_seen(request: web.Request) -> None:
            if guard is not None:
                guard.request_seen(request)

        app = make_app(
            self.cluster,
            metrics,
            token=self.token,
            max_body_bytes=self.config.max_body_bytes,
            body_timeout=limits.body_timeout,
            request_seen=request_seen,
        )
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=CONNECTION_DRAIN_SECONDS,
            keepalive_timeout=limits.keep_alive_timeout,
            logger=server_logger(),
        )
        await self._runner.setup()
        server = self._runner.server
        if server is None:
            raise RuntimeError("aiohttp's runner set up no server")
        guard = ConnectionGuard(
            server,
            max_connections=_connection_cap(limits.max_connections),
            header_timeout=limits.header_timeout,
        )
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(loop_exception_handler(guard.log))
        # Our listener, not a TCPSite: every connection goes through the guard first.
        # A TLS handshake is part of the request head: it gets the same deadline.
        self._listener = await loop.create_server(
            guard,
            self.address,
            self.port,
            reuse_address=True,
            ssl=self.tls,
            ssl_handshake_timeout=limits.header_timeout if self.tls else None,
            backlog=128,
        )
        self.cluster.restore()
        app[READY].set()
        bound = self._listener.sockets
        if bound:
            self.port = int(bound[0].getsockname()[1])
        _log.info(
            "serving",
            address=self.address,
            port=self.port,
            node=self.config.node_name,
            state_dir=str(self.state_dir),
            pods=len(self.cluster.pods.records),
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
        if self._listener is not None:
            self._listener.close()  # accept no more; open connections are the runner's to end
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.cluster is not None:
            await self.cluster.stop()
        if self._state is not None:
            self._state.close()
            self._state = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
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


def _connection_cap(configured: int) -> int:
    """The configured cap, kept well under the descriptor limit: past it the daemon must still
    open its database, accept /healthz and answer 503s."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - 64))
