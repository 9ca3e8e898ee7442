"""Reading user files field by field, with errors that name the file, the field and why.

Scenario files and the daemon's config share these readers, so both refuse bad input the same
way (`rollout.yaml: spec.nodes.count: must be a positive integer, got 0`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubesim_images.errors import ConfigError, InvalidValueError
from kubesim_images.units import parse_bandwidth, parse_duration, parse_size


class Fields:
    """Where we are in the file, so every error can say so."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(message, path=path, source=self.source)

    def mapping(self, value: Any, path: str, allowed: set[str] | None = None) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(path, f"must be a mapping, got {type(value).__name__}")
        if allowed is not None:
            unknown = sorted(str(k) for k in value if k not in allowed)
            if unknown:
                raise self.fail(
                    f"{path}.{unknown[0]}" if path else unknown[0],
                    f"unknown field (expected one of: {', '.join(sorted(allowed))})",
                )
        return value

    def sequence(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list, got {type(value).__name__}")
        return value

    def integer(
        self, value: Any, path: str, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise self.fail(path, f"must be {what}, got {value!r}")
        if maximum is not None and value > maximum:
            raise self.fail(path, f"must be at most {maximum:,}, got {value:,}")
        return value

    def number(self, value: Any, path: str, *, low: float, high: float) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise self.fail(path, f"must be a number between {low:g} and {high:g}, got {value!r}")
        return float(value)

    def duration(self, value: Any, path: str) -> float:
        try:
            return parse_duration(value)
        except InvalidValueError as exc:
            raise self.fail(path, str(exc)) from None

    def size(self, value: Any, path: str) -> int:
        try:
            return parse_size(value)
        except InvalidValueError as exc:
            raise self.fail(path, str(exc)) from None

    def bandwidth(self, value: Any, path: str) -> float:
        try:
            return parse_bandwidth(value)
        except InvalidValueError as exc:
            raise self.fail(path, str(exc)) from None
