"""The fault proxy's rules file, read field by field, and the choice of a rule per request.

A rule matches requests by path regex and method and injects one fault into the first `times`
of them (every one if unset), each with `probability` drawn from one generator seeded by the
file's `seed`, so a run with the same requests in the same order injects the same faults.
Pure: no sockets, no clock; `server` does the I/O.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from kubesim_images.errors import ConfigError
from kubesim_images.fields import Fields

FaultKind = Literal["status", "throttle", "reset", "truncate", "corrupt", "slow", "refuse"]
KINDS: tuple[FaultKind, ...] = (
    "status",
    "throttle",
    "reset",
    "truncate",
    "corrupt",
    "slow",
    "refuse",
)
_RULE_FIELDS = {
    "name", "path", "method", "times", "probability", "fault",
    "status", "retryAfter", "after", "rate", "duration",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    fault: FaultKind
    path: re.Pattern[str] | None  # searched in the request path; None: every path
    method: str | None  # None: every method
    times: int | None  # inject into the first N matching requests; None: all
    probability: float
    status: int = 503  # status: the code answered
    retry_after: str = "1"  # throttle: the Retry-After header (seconds or an HTTP date)
    after: int = 0  # reset, truncate, corrupt: body bytes passed through before the fault
    rate: float = 0.0  # slow: body bytes per second
    duration: float = 0.0  # refuse: seconds the listener stays closed

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and method.upper() != self.method:
            return False
        return self.path is None or self.path.search(path) is not None

    @property
    def at_start(self) -> bool:
        """A `refuse` rule without `path` closes the listener from the start."""
        return self.fault == "refuse" and self.path is None


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    seed: int


class Chooser:
    """Which rule, if any, faults this request: the first matching rule that still fires."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules.rules
        self._random = random.Random(rules.seed)
        self.injected = [0] * len(self.rules)

    def choose(self, method: str, path: str) -> Rule | None:
        for index, rule in enumerate(self.rules):
            if rule.at_start or not rule.matches(method, path):
                continue
            if rule.times is not None and self.injected[index] >= rule.times:
                continue
            if rule.probability < 1.0 and self._random.random() >= rule.probability:
                continue
            self.injected[index] += 1
            return rule
        return None


def load_rules(path: str | Path) -> RuleSet:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the faults file: {exc.strerror or exc}", source=str(path)
        ) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=str(path)) from None
    return parse_rules(doc, source=str(path))


def parse_rules(doc: Any, source: str) -> RuleSet:
    ctx = Fields(source)
    top = ctx.mapping(doc, "", {"seed", "faults"})
    seed = ctx.integer(top.get("seed", 0), "seed")
    rules = []
    for index, item in enumerate(ctx.sequence(top.get("faults"), "faults")):
        rules.append(_rule(ctx, item, f"faults[{index}]", index))
    return RuleSet(tuple(rules), seed)


def _rule(ctx: Fields, value: Any, where: str, index: int) -> Rule:
    doc = ctx.mapping(value, where, _RULE_FIELDS)
    fault = doc.get("fault")
    if fault not in KINDS:
        raise ctx.fail(f"{where}.fault", f"must be one of {', '.join(KINDS)}, got {fault!r}")
    pattern = None
    if doc.get("path") is not None:
        try:
            pattern = re.compile(str(doc["path"]))
        except re.error as exc:
            raise ctx.fail(f"{where}.path", f"not a regular expression: {exc}") from None
    method = doc.get("method")
    if method is not None and (not isinstance(method, str) or not method.isalpha()):
        raise ctx.fail(f"{where}.method", f"must be an HTTP method, got {method!r}")
    times = None if doc.get("times") is None else ctx.integer(doc["times"], f"{where}.times")
    probability = ctx.number(doc.get("probability", 1.0), f"{where}.probability", low=0, high=1)
    status = ctx.integer(doc.get("status", 503), f"{where}.status", minimum=400)
    if status > 599:
        raise ctx.fail(f"{where}.status", f"must be a 4xx or 5xx status, got {status}")
    rate = 0.0
    if fault == "slow":
        if doc.get("rate") is None:
            raise ctx.fail(f"{where}.rate", "a slow fault needs a rate (bytes per second)")
        rate = ctx.bandwidth(doc["rate"], f"{where}.rate")
    duration = 0.0
    if fault == "refuse":
        duration = ctx.duration(doc.get("duration", "1s"), f"{where}.duration")
    return Rule(
        name=str(doc.get("name") or f"{fault}-{index}"),
        fault=fault,
        path=pattern,
        method=method.upper() if isinstance(method, str) else None,
        times=times,
        probability=probability,
        status=status,
        retry_after=str(doc.get("retryAfter", "1")),
        after=ctx.size(doc.get("after", 0), f"{where}.after"),
        rate=rate,
        duration=duration,
    )
