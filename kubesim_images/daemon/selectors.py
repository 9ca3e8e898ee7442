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
from kubesim_images.daemon.validation import label_value_errors, qualified_name_errors

FieldGetter = Callable[[Mapping[str, Any], str], str | None]


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
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


# apimachinery's label selector grammar (labels.Parse): a lexer and a recursive descent, so
# every malformed selector is refused with its text rather than half-read.
_SPECIAL = frozenset("=!(),><")
_SYMBOLS = frozenset({")", ",", "!", "==", "=", ">", "<", "!=", "("})
_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"
_END = ("end", "")


def _lex(text: str) -> list[tuple[str, str]]:
    """(token, literal) pairs: a symbol is its own token, `in`/`notin` are "in"/"notin", any
    other run of characters an "id"; ends with ("end", "")."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            tokens.append(_END)
            return tokens
        if text[i] in _SPECIAL:
            j, last = i, ""
            while j < n and text[j] in _SPECIAL:
                if text[i : j + 1] in _SYMBOLS:
                    last = text[i : j + 1]
                elif last:
                    break
                j += 1
            if not last:
                raise bad_request(f"error expected: keyword found '{text[i:j]}'")
            tokens.append((last, last))
            i += len(last)
            continue
        j = i
        while j < n and text[j] not in _SPECIAL and text[j] not in " \t\r\n":
            j += 1
        word = text[i:j]
        tokens.append((word if word in ("in", "notin") else "id", word))
        i = j


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def peek(self, *, values: bool = True) -> tuple[str, str]:
        tok, lit = self.tokens[self.pos]
        return ("id" if values and tok in ("in", "notin") else tok), lit

    def take(self, *, values: bool = True) -> tuple[str, str]:
        found = self.peek(values=values)
        self.pos += 1
        return found

    def parse(self) -> list[Requirement]:
        out: list[Requirement] = []
        while True:
            tok, lit = self.peek()
            if tok == "end":
                return out
            if tok not in ("id", "!"):
                raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                out.append(self.requirement())
            except ValueError as exc:
                raise ValueError(f"unable to parse requirement: {exc}") from None
            tok, lit = self.take()
            if tok == "end":
                return out
            if tok != ",":
                raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")
            tok, lit = self.peek()
            if tok not in ("id", "!"):
                raise ValueError(f"found '{lit}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        tok, key = self.take()
        op = ""
        if tok == "!":
            op = "!"
            tok, key = self.take()
        if tok != "id":
            raise ValueError(f"found '{key}', expected: identifier")
        errors = qualified_name_errors(key)
        if errors:
            raise ValueError(f'<nil>: Invalid value: "{key}": {"; ".join(errors)}')
        if self.peek()[0] in ("end", ","):
            return Requirement(key, op or "exists", frozenset())
        tok, lit = self.take(values=False)
        ops = {"in": "in", "notin": "notin", "=": "=", "==": "=", "!=": "!=", ">": "gt", "<": "lt"}
        if tok not in ops:
            raise ValueError(f"found '{lit}', expected: {_BINARY_OPERATORS}")
        op = ops[tok]
        values = self.value_set() if op in ("in", "notin") else self.exact_value()
        _check_values(key, op, sorted(values))
        return Requirement(key, op, frozenset(values))

    def value_set(self) -> set[str]:
        tok, lit = self.take()
        if tok != "(":
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self.peek()
        if tok == ")":
            self.take()
            return {""}
        if tok not in ("id", ","):
            raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:
            tok, lit = self.take()
            if tok == "id":
                values.add(lit)
                nxt, nlit = self.peek()
                if nxt == ")":
                    break
                if nxt != ",":
                    raise ValueError(f"found '{nlit}', expected: ',' or ')'")
            elif tok == ",":
                if not values or self.peek()[0] in (")", ","):
                    values.add("")
                if self.peek()[0] == ")":
                    break
            else:
                raise ValueError(f"found '{lit}', expected: ',', or identifier")
        self.take()  # the ")"
        return values

    def exact_value(self) -> set[str]:
        if self.peek()[0] in ("end", ","):
            return {""}
        tok, lit = self.take()
        if tok != "id":
            raise ValueError(f"found '{lit}', expected: identifier")
        return {lit}


def _check_values(key: str, op: str, values: list[str]) -> None:
    """NewRequirement's checks of the values (field paths relative to the requirement)."""
    errors: list[str] = []
    if op in ("gt", "lt"):
        errors += [
            f'values[{i}]: Invalid value: "{v}": '
            "for 'Gt', 'Lt' operators, the value must be an integer"
            for i, v in enumerate(values)
            if not re.fullmatch(r"[+-]?[0-9]+", v)
        ]
    for i, value in enumerate(values):
        problems = label_value_errors(value)
        if problems:
            errors.append(f'values[{i}][{key}]: Invalid value: "{value}": {"; ".join(problems)}')
    if len(errors) == 1:
        raise ValueError(errors[0])
    if errors:
        raise ValueError(f"[{', '.join(errors)}]")


def parse_label_selector(text: str | None) -> list[Requirement]:
    """The requirements of a label selector, or a 400 with labels.Parse's text."""
    try:
        return _Parser(text or "").parse()
    except ValueError as exc:
        raise bad_request(str(exc)) from None


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
        if req.op in ("gt", "lt") and not _compares(req, value):
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


def _compares(req: Requirement, value: str | None) -> bool:
    """`key>N` / `key<N`: the label exists and is an integer on the right side of N."""
    if value is None or not re.fullmatch(r"[+-]?[0-9]+", value):
        return False
    (bound,) = req.values
    return int(value) > int(bound) if req.op == "gt" else int(value) < int(bound)
