"""Connection hygiene in front of aiohttp: a cap on open connections and a header deadline.

aiohttp holds a connection that never finishes its request headers for as long as its
keep-alive timer allows, and accepts connections until the process runs out of descriptors, at
which point `/healthz` is down too. `ConnectionGuard` is the protocol factory the listening
socket uses instead of aiohttp's own: past `max_connections` a new connection is answered
`503` with a `Status` at once and closed, and a connection whose first request has not reached
a handler within `header_timeout` is closed (as Go's `ReadHeaderTimeout` does, without an
answer). Both are logged as one structured line, at most once a second with a count, so a flood
of them cannot flood the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from kubesim_images.logging import get_logger

_log = get_logger()


class RateLimitedLog:
    """One warning line per event name per interval, carrying how many were folded into it."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._folded: dict[str, int] = {}

    def warning(self, event: str, **fields: Any) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last.get(event, -self.interval) < self.interval:
            self._folded[event] = self._folded.get(event, 0) + 1
            return
        self._last[event] = now
        _log.warning(event, suppressed_since_last=self._folded.pop(event, 0), **fields)


def _refusal(max_connections: int) -> bytes:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"too many open connections (the limit is {max_connections}); retry later",
        "reason": "ServiceUnavailable",
        "details": {"retryAfterSeconds": 1},
        "code": 503,
    }
    body = json.dumps(status).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class _Refused(asyncio.Protocol):
    """Answers 503 and closes; reads (and drops) what the client sends meanwhile, so the
    client's request does not turn the close into a reset that would hide the answer."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):  # never: listeners give streams
            transport.close()
            return
        transport.write(self._answer)
        if transport.can_write_eof():
            transport.write_eof()
            asyncio.get_running_loop().call_later(2.0, transport.close)
        else:
            transport.close()

    def data_received(self, data: bytes) -> None:
        pass


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, counted and under the header deadline."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._guard.open += 1
        self._guard.waiting[transport] = self
        self._timer = asyncio.get_running_loop().call_later(
            self._guard.header_timeout, self._expire
        )
        self._inner.connection_made(transport)

    def request_seen(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._guard.log.warning(
                "header_timeout",
                detail=f"no complete request within {self._guard.header_timeout}s; closed",
            )
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.request_seen()
        self._guard.open -= 1
        if self._transport is not None:
            self._guard.waiting.pop(self._transport, None)
        self._transport = None
        self._inner.connection_lost(exc)


class ConnectionGuard:
    """The listening socket's protocol factory: aiohttp's server behind a cap and a deadline."""

    def __init__(self, server: web.Server, *, max_connections: int, header_timeout: float) -> None:
        self._server = server
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.open = 0
        self.waiting: dict[asyncio.BaseTransport, _Guarded] = {}
        self.log = RateLimitedLog()
        self._answer = _refusal(max_connections)

    def __call__(self) -> asyncio.Protocol:
        if self.open >= self.max_connections:
            self.log.warning("connection_refused", open=self.open, limit=self.max_connections)
            return _Refused(self._answer)
        return _Guarded(self._server(), self)

    def request_seen(self, request: web.BaseRequest) -> None:
        """A request reached a handler: its connection's headers came in time."""
        transport = request.transport
        if transport is not None:
            guarded = self.waiting.pop(transport, None)
            if guarded is not None:
                guarded.request_seen()


class _OneLine(logging.Handler):
    """aiohttp's server log as one structured line each: no traceback for a client's fault."""

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        detail = record.getMessage()
        if exc is not None:
            detail = f"{detail}: {type(exc).__name__}: {exc}"
        if isinstance(exc, ConnectionError):
            _log.info("client_disconnected", detail=detail)
        elif record.levelno >= logging.WARNING:
            _log.warning("bad_request", detail=detail[:500])
        elif exc is not None:  # aiohttp's debug level: not HTTP at all (TLS to an HTTP port)
            _log.info("bad_request", detail=detail[:500])


def server_logger() -> logging.Logger:
    """The logger aiohttp's request handler reports malformed requests to."""
    logger = logging.getLogger("kubesim_images.http")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)  # the handler keeps only what names a request's fault
    if not logger.handlers:
        logger.addHandler(_OneLine())
    return logger


def loop_exception_handler(
    log: RateLimitedLog,
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """Out-of-descriptor `accept()` failures as one rate-limited line, not a traceback each."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and "accept" in str(context.get("message", "")):
            log.warning("accept_failed", detail=f"{context.get('message')}: {exc}")
            return
        loop.default_exception_handler(context)

    return handle
