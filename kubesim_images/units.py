"""Durations, sizes and bandwidths as users write them in Kubernetes-style files.

Durations follow Go's `time.ParseDuration` (`300ms`, `1h30m`), sizes Kubernetes quantities
(`200Mi`, `1Gi`, `500M`, plain bytes) and bandwidths either a size per second (`100Mi`,
`100Mi/s`) or bits per second (`800Mbps`, `10Gbps`). Every parser answers with
`InvalidValueError` naming what was wrong, so the edges can report the field.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from kubesim_images.errors import InvalidValueError

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(
    r"([+]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|[eE][+-]?\d+)?"
)
_BITS = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kKMGT]?)bps")
_UNLIMITED = frozenset({"unlimited", "inf", "infinite", "none"})


def parse_duration(value: object) -> float:
    """Seconds from a Go duration string, or a plain number of seconds."""
    if isinstance(value, bool):
        raise InvalidValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise InvalidValueError(f"invalid duration {value!r}: must be a non-negative number")
        return float(value)
    if not isinstance(value, str):
        raise InvalidValueError(f"invalid duration {value!r}")
    text = value.strip()
    if text in {"0", "+0"}:
        return 0.0
    body = text.removeprefix("+")
    if body.startswith("-"):
        raise InvalidValueError(f"invalid duration {value!r}: must not be negative")
    pos = 0
    total = 0.0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            raise InvalidValueError(
                f'time: invalid duration "{value}" (use Go syntax such as 300ms, 10s, 5m, 1h30m)'
            )
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise InvalidValueError(f'time: invalid duration "{value}"')
    return total


def format_duration(seconds: float) -> str:
    """Go's `time.Duration.String()` for a duration in seconds (`1.5s`, `2m0s`, `12ms`)."""
    return format_duration_ns(round(seconds * 1e9))


def format_duration_ns(nanos: int) -> str:
    """Go's `time.Duration.String()` for a duration in whole nanoseconds."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, scale in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= scale:
                return sign + _trim(nanos, scale) + unit
    hours, rem = divmod(nanos, 3_600_000_000_000)
    minutes, rem = divmod(rem, 60_000_000_000)
    secs = _trim(rem, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return sign + secs


def _trim(value: int, scale: int) -> str:
    whole, frac = divmod(value, scale)
    if not frac:
        return str(whole)
    digits = len(str(scale)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")


MAX_SIZE = 2**63 - 1


def parse_size(value: object) -> int:
    """Bytes from a Kubernetes quantity (`200Mi`, `1Gi`, `500M`, `1e6`) or a plain integer."""
    if isinstance(value, bool):
        raise InvalidValueError(f"invalid size {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidValueError(f"invalid size {value!r}: must not be negative")
        return _bounded(value, value)
    if isinstance(value, float):
        if value < 0 or not math.isfinite(value):
            raise InvalidValueError(f"invalid size {value!r}: must be a non-negative number")
        return _bounded(math.ceil(value), value)
    if not isinstance(value, str):
        raise InvalidValueError(f"invalid size {value!r}")
    match = _QUANTITY.fullmatch(value.strip())
    if match is None:
        raise InvalidValueError(
            f"invalid size {value!r}: quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (e.g. 200Mi, 1Gi, 500M, 1024)"
        )
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise InvalidValueError(f"invalid size {value!r}") from exc
    suffix = match.group(2) or ""
    if suffix in _BINARY:
        number *= _BINARY[suffix]
    elif suffix in _DECIMAL:
        number *= _DECIMAL[suffix]
    else:
        number *= Decimal(10) ** int(suffix[1:])
    # Kubernetes rounds fractional byte quantities up.
    return _bounded(math.ceil(number), value)


def _bounded(size: int, value: object) -> int:
    """A Quantity's byte value is an int64 in Kubernetes; past it nothing is meaningful."""
    if size > MAX_SIZE:
        shown = value if not isinstance(value, int) or size < 10**30 else f"{str(size)[:12]}..."
        raise InvalidValueError(f"invalid size {shown!r}: too large (at most 8Ei)")
    return size


def parse_bandwidth(value: object) -> float:
    """Bytes per second; `unlimited` (or null) is `math.inf`.

    A size per second (`100Mi`, `100Mi/s`, plain bytes) or bits per second (`800Mbps`).
    """
    if value is None:
        return math.inf
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _UNLIMITED:
            return math.inf
        bits = _BITS.fullmatch(text)
        if bits is not None:
            scale = _DECIMAL[bits.group(2).upper().replace("K", "k")]
            rate = float(bits.group(1)) * scale / 8.0
            if rate <= 0 or not math.isfinite(rate):
                raise InvalidValueError(
                    f"invalid bandwidth {value!r}: must be positive (or 'unlimited')"
                )
            return rate
        text = text.removesuffix("/s")
        try:
            size = parse_size(text)
        except InvalidValueError as exc:
            if "too large" in str(exc):
                raise InvalidValueError(
                    f"invalid bandwidth {value!r}: too large (at most 8Ei per second)"
                ) from None
            raise InvalidValueError(
                f"invalid bandwidth {value!r}: use a size per second (100Mi), bits per second "
                "(800Mbps) or 'unlimited'"
            ) from None
    else:
        try:
            size = parse_size(value)
        except InvalidValueError:
            raise InvalidValueError(f"invalid bandwidth {value!r}") from None
    if size == 0:
        raise InvalidValueError(f"invalid bandwidth {value!r}: must be positive (or 'unlimited')")
    return float(size)


def format_size(size: float) -> str:
    """A short human size for tables (`1.5 GiB`, `200 MiB`, `512 B`)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(size) >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{int(size)} B"
