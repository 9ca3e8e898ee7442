"""structlog, configured once: JSON lines on stderr by default, a console renderer for people.

Every log line passes through `redact`, so a credential that slips into an event dict (a
password, token, auth string or pull secret) is masked before it is rendered.

structlog (and rich, which it imports: most of a short command's start-up) is loaded by the first
line a logger writes, not by `configure` nor by asking for a logger: `kubesim-images pull` and a
scenario run log nothing unless something goes wrong, and their start-up is part of the time they
take. Until then a logger answers `is_enabled_for` and drops lines below the level itself.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    import structlog

_SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "auth",
        "token",
        "secret",
        "authorization",
        "identitytoken",
        "registrytoken",
        "dockerconfigjson",
        "creds",
        "credentials",
    }
)
_REDACTED = "[REDACTED]"


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask values of keys that name secrets."""
    for key in list(event_dict):
        if key.lower().replace("_", "").replace("-", "") in _SECRET_KEYS:
            event_dict[key] = _REDACTED
    return event_dict


class _Stderr(io.TextIOBase):
    """Whatever `sys.stderr` is when a line is written (test runners swap it), not at setup."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


# What `configure` asked for, applied when structlog is loaded (at once if it already is).
_pending: tuple[str, str, TextIO | None] | None = None
_level = logging.WARNING  # the level lines are written from; a library's default


def configure(
    *, log_format: str = "json", level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure logging for the process; call once from the CLI."""
    global _pending, _level  # noqa: PLW0603 - the process's one logging configuration
    if log_format not in {"console", "json"}:
        raise ValueError(f"unknown log format {log_format!r} (json or console)")
    _level = logging.getLevelNamesMapping()[level.upper()]
    _pending = (log_format, level, stream)
    if "structlog" in sys.modules:
        _apply()


def enabled(level: int) -> bool:
    """Whether a line at `level` would be written, without loading structlog."""
    return level >= _level


def _apply() -> None:
    global _pending  # noqa: PLW0603
    import structlog  # noqa: PLC0415 - see the module's doc

    log_format, level, stream = _pending or ("json", "warning", None)
    _pending = None
    renderer: structlog.typing.Processor
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=stream or cast("TextIO", _Stderr())),
        cache_logger_on_first_use=False,
    )


def get_logger(**context: Any) -> structlog.typing.FilteringBoundLogger:
    """A logger with bound context; used as a library, the package logs warnings and worse."""
    return cast("structlog.typing.FilteringBoundLogger", _DeferredLogger(context))


# The level of each of a bound logger's line-writing methods.
_METHOD_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


def _drop(*_args: Any, **_kwargs: Any) -> None:
    """A line below the level, dropped as structlog's filtering logger drops it."""


class _DeferredLogger:
    """structlog's logger, made when a line is written. While structlog is not loaded nobody
    can have configured it but `configure`, whose level then decides alone; once it is loaded,
    every call goes to structlog's own logger."""

    __slots__ = ("_bound", "_context")

    def __init__(self, context: dict[str, Any]) -> None:
        self._context = context
        self._bound: Any = None

    def _logger(self) -> Any:
        import structlog  # noqa: PLC0415 - see the module's doc

        if _pending is not None or not structlog.is_configured():
            _apply()
        if self._bound is None:
            # Without context, structlog's lazy proxy: it follows later configuration.
            logger = structlog.get_logger()
            self._bound = logger.bind(**self._context) if self._context else logger
        return self._bound

    def is_enabled_for(self, level: int) -> bool:
        if "structlog" not in sys.modules:
            return enabled(level)
        return bool(self._logger().is_enabled_for(level))

    def bind(self, **context: Any) -> _DeferredLogger:
        return _DeferredLogger({**self._context, **context})

    def __getattr__(self, name: str) -> Any:
        level = _METHOD_LEVELS.get(name)
        if level is not None and "structlog" not in sys.modules and not enabled(level):
            return _drop
        return getattr(self._logger(), name)
