"""structlog, configured once: JSON lines on stderr by default, a console renderer for people.

Every log line passes through `redact`, so a credential that slips into an event dict (a
password, token, auth string or pull secret) is masked before it is rendered.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

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


def configure(
    *, log_format: str = "json", level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog for the process; call once from the CLI."""
    renderer: structlog.typing.Processor
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    elif log_format == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        raise ValueError(f"unknown log format {log_format!r} (json or console)")
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
    if not structlog.is_configured():
        configure(level="warning")
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger()
    return logger.bind(**context) if context else logger
