"""The fault proxy itself: an aiohttp reverse proxy that forwards to one upstream registry and
injects the fault a rule chooses (see `rules`) into the matching requests.

Faults are injected where a real network or registry produces them: a status (5xx, or 429 with
`Retry-After`) is answered without asking upstream; `reset`, `truncate`, `corrupt` and `slow`
pass the upstream's answer through and break its body (abort the connection after `after`
bytes; end it cleanly with a shorter `Content-Length`; flip the byte at `after`, same length;
pace it at `rate` bytes/s); `refuse` closes the listening socket for `duration` (from the start
if the rule has no `path`, else from the matching request, whose connection is aborted), so
clients get a real `connection refused`. Every injected fault is one `fault_injected` log line.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web

from kubesim_images.faultproxy.rules import Chooser, Rule, RuleSet
from kubesim_images.logging import get_logger

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
     "proxy-authorization", "proxy-authenticate", "content-length"}
)  # fmt: skip
_CHUNK = 16 << 10


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()


class FaultProxy:
    """Listens on `host:port` (0: any free port, read `port` after `start`), forwards to
    `upstream` (`http://host:port`)."""

    def __init__(
        self, upstream: str, rules: RuleSet, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.port = port
        self.chooser = Chooser(rules)
        self._rules = rules
        self._log = get_logger(component="fault_proxy")
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._reopen: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()  # set while the listener is closed by a `refuse`

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False, trust_env=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await self._listen()
        self._log.info("fault_proxy_listening", address=f"{self.host}:{self.port}",
                       upstream=self.upstream, rules=len(self._rules.rules))  # fmt: skip
        for rule in self._rules.rules:
            if rule.at_start:
                self._inject(rule, "", "", until=rule.duration)
                await self._refuse(rule.duration)

    async def stop(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
            await asyncio.gather(self._reopen, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _listen(self) -> None:
        assert self._runner is not None  # noqa: S101 - start() set it up
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        server = self._site._server  # noqa: SLF001 - the bound port when 0 was asked for
        if self.port == 0 and isinstance(server, asyncio.base_events.Server):
            self.port = int(server.sockets[0].getsockname()[1])

    async def _refuse(self, seconds: float) -> None:
        """Close the listener now; reopen it `seconds` later (a later refuse extends nothing)."""
        if self._site is None or self.closed.is_set():
            return
        site, self._site = self._site, None
        self.closed.set()
        await site.stop()
        self._reopen = asyncio.get_running_loop().create_task(
            self._reopen_after(seconds), name="fault-proxy-reopen"
        )
        self._reopen.add_done_callback(self._crashed)

    async def _reopen_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._listen()
        self.closed.clear()
        self._log.info("fault_proxy_listening", address=f"{self.host}:{self.port}", reopened=True)

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._log.error("fault_proxy_task_crashed", task=task.get_name(),
                            exc_info=task.exception())  # fmt: skip

    def _inject(self, rule: Rule, method: str, path: str, **detail: Any) -> None:
        self._log.warning("fault_injected", rule=rule.name, fault=rule.fault, method=method,
                          path=path, **detail)  # fmt: skip

    # -- requests ------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rule = self.chooser.choose(request.method, request.path)
        if rule is None:
            return await self._forward(request, None)
        if rule.fault == "status":
            self._inject(rule, request.method, request.path, status=rule.status)
            return web.Response(
                status=rule.status,
                body=_error_body("UNAVAILABLE", "injected by kubesim-images fault-proxy"),
                content_type="application/json",
            )
        if rule.fault == "throttle":
            self._inject(rule, request.method, request.path, retry_after=rule.retry_after)
            return web.Response(
                status=429,
                headers={"Retry-After": rule.retry_after},
                body=_error_body("TOOMANYREQUESTS", "injected by kubesim-images fault-proxy"),
                content_type="application/json",
            )
        if rule.fault == "refuse":
            self._inject(rule, request.method, request.path, seconds=rule.duration)
            if request.transport is not None:
                request.transport.abort()
            await self._refuse(rule.duration)
            return web.Response(status=503)  # never sent: the connection is gone
        return await self._forward(request, rule)

    async def _forward(self, request: web.Request, rule: Rule | None) -> web.StreamResponse:
        assert self._session is not None  # noqa: S101 - start() opened it
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read() if request.can_read_body else None
        try:
            upstream = await self._session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=body,
                allow_redirects=False,
            )
        except aiohttp.ClientError as exc:
            self._log.warning("upstream_failed", path=request.path, error=str(exc))
            return web.Response(status=502, body=_error_body("UNAVAILABLE", "upstream failed"))
        async with upstream:
            out = web.StreamResponse(status=upstream.status)
            for key, value in upstream.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    out.headers.add(key, value)
            length = upstream.content_length
            if rule is not None and rule.fault == "truncate" and length is not None:
                length = min(length, rule.after)
            if length is not None:
                out.content_length = length
            await out.prepare(request)
            if request.method == "HEAD":
                await out.write_eof()
                return out
            return await self._body(request, upstream, out, rule, length)

    async def _body(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        out: web.StreamResponse,
        rule: Rule | None,
        length: int | None,
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        sent = 0
        started = loop.time()
        fault = rule.fault if rule is not None else None
        size = _CHUNK
        if rule is not None and fault == "slow":
            size = max(1, min(_CHUNK, int(rule.rate / 10)))  # ten writes a second at least
            self._inject(rule, request.method, request.path, rate=rule.rate)
        async for chunk in upstream.content.iter_chunked(size):
            data = chunk
            if (
                rule is not None
                and fault in {"reset", "truncate"}
                and sent + len(data) >= rule.after
            ):
                data = data[: rule.after - sent]
                await out.write(data)
                sent += len(data)
                self._inject(rule, request.method, request.path, after=sent)
                if fault == "reset":
                    if request.transport is not None:
                        request.transport.abort()
                    return out
                break
            if rule is not None and fault == "corrupt" and sent <= rule.after < sent + len(data):
                at = rule.after - sent
                data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
                self._inject(rule, request.method, request.path, at=rule.after)
            if rule is not None and fault == "slow":
                due = started + (sent + len(data)) / rule.rate
                await asyncio.sleep(max(0.0, due - loop.time()))
            await out.write(data)
            sent += len(data)
        if length is not None and sent < length:  # upstream ended early: pass that on
            if request.transport is not None:
                request.transport.abort()
            return out
        await out.write_eof()
        return out


async def serve(proxy: FaultProxy) -> None:
    """Run until cancelled (SIGINT/SIGTERM in the CLI)."""
    await proxy.start()
    try:
        await asyncio.Event().wait()
    finally:
        await proxy.stop()
