"""Field and label selectors as the API server parses them (`a=b,c!=d`, `env in (x,y)`...).

kubectl's requests send terms in any order (`describe` shuffles them) and may leave a value
empty (`involvedObject.namespace=`), so terms are parsed into a set of requirements and every
one must hold.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubesim_images.daemon.kube import bad_request

FieldGetter = Callable[[Mapping[str, Any], str], str | None]


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str]


def parse_field_selector(text: str | None, allowed: frozenset[str]) -> list[Requirement]:
    out: list[Requirement] = []
    for raw in (text or "").split(","):
        term = raw.strip()
        if not term:
            continue
        if "!=" in term:
            key, _, value = term.partition("!=")
            op = "!="
        elif "==" in term:
            key, _, value = term.partition("==")
            op = "="
        elif "=" in term:
            key, _, value = term.partition("=")
            op = "="
        else:
            raise bad_request(f'invalid selector: "{text}"; can\'t understand "{term}"')
        key = key.strip()
        if key not in allowed:
            raise bad_request(f"field label not supported: {key}")
        out.append(Requirement(key, op, frozenset({value.strip()})))
    return out


_SET_TERM = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def parse_label_selector(text: str | None) -> list[Requirement]:
    out: list[Requirement] = []
    # Split on commas that are not inside parentheses.
    terms, depth, current = [], 0, ""
    for char in text or "":
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    for raw in terms:
        term = raw.strip()
        if not term:
            continue
        match = _SET_TERM.match(term)
        if match:
            values = frozenset(v.strip() for v in match.group(3).split(",") if v.strip())
            out.append(Requirement(match.group(1), match.group(2), values))
        elif "!=" in term:
            key, _, value = term.partition("!=")
            out.append(Requirement(key.strip(), "!=", frozenset({value.strip()})))
        elif "=" in term:
            key, _, value = term.replace("==", "=").partition("=")
            out.append(Requirement(key.strip(), "=", frozenset({value.strip()})))
        elif term.startswith("!"):
            out.append(Requirement(term[1:].strip(), "!", frozenset()))
        elif re.fullmatch(r"[\w./-]+", term):
            out.append(Requirement(term, "exists", frozenset()))
        else:
            raise bad_request(f'unable to parse requirement: "{term}"')
    return out


def matches(requirements: list[Requirement], lookup: Callable[[str], str | None]) -> bool:
    for req in requirements:
        value = lookup(req.key)
        if req.op == "=" and (value or "") not in req.values:
            return False
        if req.op == "!=" and (value or "") in req.values:
            return False
        if req.op == "in" and (value is None or value not in req.values):
            return False
        if req.op == "notin" and value is not None and value in req.values:
            return False
        if req.op == "exists" and value is None:
            return False
        if req.op == "!" and value is not None:
            return False
    return True


def dotted(obj: Mapping[str, Any], path: str) -> str | None:
    """The string at a dotted path (`involvedObject.name`), None when absent."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return None if current is None else str(current)
