"""Tests for kubesim_images.units: the scalars users write in Kubernetes-style files.

Durations follow Go's ``time.ParseDuration`` and render exactly as ``time.Duration.String()``
(event messages quote them), sizes follow Kubernetes quantities (rounded up to whole bytes) and
bandwidths are a size per second or bits per second. Every refusal is an ``InvalidValueError``.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesim_images.errors import InvalidValueError
from kubesim_images.units import format_duration, parse_bandwidth, parse_duration, parse_size

MICRO = "\u00b5"  # Go's Duration.String() writes U+00B5 MICRO SIGN
GREEK_MU = "\u03bc"  # ParseDuration also accepts U+03BC GREEK SMALL LETTER MU

NS_PER_S = 1_000_000_000


def _go_duration_string(nanos: int) -> str:
    """An independent port of Go's ``Duration.String`` (time/time.go) for a non-negative int."""
    if nanos == 0:
        return "0s"

    def frac(value: int, prec: int) -> tuple[str, int]:
        digits = ""
        printed = False
        for _ in range(prec):
            digit = value % 10
            printed = printed or digit != 0
            if printed:
                digits = str(digit) + digits
            value //= 10
        return ("." + digits if printed else ""), value

    if nanos < NS_PER_S:
        if nanos < 1_000:
            prec, unit = 0, "ns"
        elif nanos < 1_000_000:
            prec, unit = 3, MICRO + "s"
        else:
            prec, unit = 6, "ms"
        fraction, whole = frac(nanos, prec)
        return f"{whole}{fraction}{unit}"
    fraction, whole_seconds = frac(nanos, 9)
    text = f"{whole_seconds % 60}{fraction}s"
    minutes = whole_seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        if hours:
            text = f"{hours}h{text}"
    return text


# --- parse_duration: Go syntax ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("300ms", 0.3),
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("2h45m30s", 9930.0),
        ("1h1m1s1ms1us1ns", 3661.001001001),
        ("0", 0.0),
        ("+0", 0.0),
        ("0s", 0.0),
        ("+5s", 5.0),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("2ns", 2e-9),
        ("1us", 1e-6),
        (f"1{MICRO}s", 1e-6),
        (f"250{GREEK_MU}s", 250e-6),
        (" 5s ", 5.0),
    ],
)
def test_parse_duration_accepts_go_syntax(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("number", "seconds"), [(0, 0.0), (5, 5.0), (2.5, 2.5), (0.001, 0.001)])
def test_parse_duration_takes_plain_numbers_as_seconds(number: float, seconds: float) -> None:
    result = parse_duration(number)
    assert result == seconds
    assert isinstance(result, float)


@pytest.mark.parametrize(
    "text",
    [
        "-1s",  # negative durations are refused
        "-0",
        "10",  # a string needs a unit: Go's "missing unit in duration"
        "abc",
        "",
        "s",
        ".s",
        f"{MICRO}s",
        "1h-1m",
        "1 h",
        "1S",  # units are case-sensitive
        "1d",  # Go has no day unit
        "1.5.5s",
    ],
)
def test_parse_duration_refuses_bad_strings(text: str) -> None:
    with pytest.raises(InvalidValueError):
        parse_duration(text)


def test_parse_duration_error_names_the_input_and_go_syntax() -> None:
    with pytest.raises(InvalidValueError, match=r'invalid duration "abc".*300ms'):
        parse_duration("abc")
    with pytest.raises(InvalidValueError, match="must not be negative"):
        parse_duration("-1s")


@pytest.mark.parametrize("value", [-1, -0.5, math.inf, math.nan, True, False, None, [1], b"1s"])
def test_parse_duration_refuses_bad_values(value: object) -> None:
    with pytest.raises(InvalidValueError):
        parse_duration(value)


# --- format_duration: Go's time.Duration.String() ------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1e-9, "1ns"),
        (999e-9, "999ns"),
        (1.5e-6, f"1.5{MICRO}s"),
        (500e-6, f"500{MICRO}s"),
        (0.012, "12ms"),
        (0.0015, "1.5ms"),
        (0.999999999, "999.999999ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (1.2345, "1.2345s"),
        (1.000000001, "1.000000001s"),
        (59, "59s"),
        (60, "1m0s"),
        (90.5, "1m30.5s"),
        (120, "2m0s"),
        (3600, "1h0m0s"),
        (3601, "1h0m1s"),
        (5400, "1h30m0s"),
        (360000, "100h0m0s"),
    ],
)
def test_format_duration_is_go_duration_string(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_uses_the_micro_sign() -> None:
    assert format_duration(500e-6).encode() == b"500\xc2\xb5s"


def test_format_duration_rounds_to_whole_nanoseconds() -> None:
    assert format_duration(1e-10) == "0s"
    assert format_duration(1.4e-9) == "1ns"


@given(st.integers(min_value=0, max_value=10**15))
def test_format_duration_matches_go_for_every_integer_nanosecond(nanos: int) -> None:
    assert format_duration(nanos / NS_PER_S) == _go_duration_string(nanos)


@given(st.integers(min_value=0, max_value=10**15))
def test_duration_round_trip_is_stable(nanos: int) -> None:
    seconds = nanos * 1e-9
    text = format_duration(seconds)
    assert format_duration(parse_duration(text)) == text
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=1e-15)


# --- parse_size: Kubernetes quantities ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("200Mi", 200 * 2**20),
        ("1Gi", 2**30),
        ("1Ki", 1024),
        ("2Ti", 2 * 2**40),
        ("500M", 500_000_000),
        ("1k", 1000),
        ("+1k", 1000),
        ("3G", 3_000_000_000),
        ("1024", 1024),
        ("0", 0),
        ("1e3", 1000),
        ("1E3", 1000),
        ("5e+2", 500),
        ("1.5Ki", 1536),
        ("0.5Gi", 2**29),
        (" 10Mi ", 10 * 2**20),
    ],
)
def test_parse_size_reads_quantities(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "size"),
    [("1.1", 2), ("0.1Ki", 103), ("1e-1", 1), ("1.0001Ki", 1025), ("0.000001M", 1)],
)
def test_parse_size_rounds_fractional_bytes_up(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(("value", "size"), [(0, 0), (3, 3), (2.2, 3), (1024.0, 1024)])
def test_parse_size_takes_plain_numbers_as_bytes(value: float, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize(
    "value",
    [
        "-1",
        "-1Mi",
        "abc",
        "",
        "Mi",
        "1MB",
        "1mi",
        "1m",  # milli-bytes make no sense for a size
        "1 Gi",
        "1.2.3",
        "1e",
        -1,
        math.nan,
        math.inf,
        True,
        None,
    ],
)
def test_parse_size_refuses(value: object) -> None:
    with pytest.raises(InvalidValueError):
        parse_size(value)


def test_parse_size_error_shows_the_quantity_grammar() -> None:
    with pytest.raises(InvalidValueError, match=r"invalid size '1MB'.*200Mi"):
        parse_size("1MB")


# --- parse_bandwidth: size per second or bits per second ----------------------------------


@pytest.mark.parametrize(
    ("value", "rate"),
    [
        ("100Mi", 100 * 2**20),
        ("100Mi/s", 100 * 2**20),
        ("1000", 1000.0),
        (1000, 1000.0),
        ("800Mbps", 100e6),
        ("10Gbps", 1.25e9),
        ("1.5Gbps", 187.5e6),
        ("1kbps", 125.0),
        ("1Kbps", 125.0),
        ("8bps", 1.0),
    ],
)
def test_parse_bandwidth_reads_rates(value: object, rate: float) -> None:
    result = parse_bandwidth(value)
    assert result == pytest.approx(rate)
    assert isinstance(result, float)


@pytest.mark.parametrize("value", ["unlimited", "Unlimited", " unlimited ", "inf", "none", None])
def test_parse_bandwidth_unlimited_is_infinite(value: object) -> None:
    assert parse_bandwidth(value) == math.inf


@pytest.mark.parametrize("value", ["0", "0Mi", "0/s", 0, "abc", "fast", "-1Mi", "100Mb", True])
def test_parse_bandwidth_refuses(value: object) -> None:
    with pytest.raises(InvalidValueError):
        parse_bandwidth(value)


def test_parse_bandwidth_zero_says_it_must_be_positive() -> None:
    with pytest.raises(InvalidValueError, match=r"must be positive \(or 'unlimited'\)"):
        parse_bandwidth("0")


@pytest.mark.parametrize("value", ["0Mbps", "0bps", "0.0Gbps"])
def test_parse_bandwidth_refuses_zero_bits_per_second(value: str) -> None:
    with pytest.raises(InvalidValueError, match="must be positive"):
        parse_bandwidth(value)


@pytest.mark.parametrize("value", ["1e400", 10**400, "9Ei", 1e300, f"{2**63}"])
def test_sizes_past_int64_are_refused_not_overflowed(value: object) -> None:
    """A Quantity's byte value is an int64: past it, a clear refusal, never an OverflowError."""
    with pytest.raises(InvalidValueError, match="too large"):
        parse_size(value)
    with pytest.raises(InvalidValueError):
        parse_bandwidth(value)


def test_the_largest_size_is_int64_max() -> None:
    assert parse_size(f"{2**63 - 1}") == 2**63 - 1
    assert parse_size("7Ei") == 7 * 2**60


@pytest.mark.parametrize("value", ["1" + "0" * 400 + "Mbps"])
def test_an_infinite_bits_per_second_rate_is_refused(value: str) -> None:
    with pytest.raises(InvalidValueError, match="must be positive"):
        parse_bandwidth(value)
