"""JSON syntax errors in the words of Go's encoding/json, which the apiserver's answers quote.

The daemon parses with Python's `json`, whose errors (`Expecting value: line 1 column 15 (char
14)`) would leak into a `Status`. The apiserver's decoder says `couldn't get version/kind; json
parse error: invalid character '}' looking for beginning of value`: `go_syntax_error` turns a
`JSONDecodeError` into that text from what Python knows (its message and the offset), looking
at the document around the offset where Go's scanner says more (inside a literal, a number, an
array or an object). `summarize` is the apiserver's `summarizeData`, the excerpt of a body that
it could not recognise.
"""

from __future__ import annotations

import json
import string

UNEXPECTED_END = "unexpected end of JSON input"
_LITERALS = {"t": "true", "f": "false", "n": "null"}


def quote_char(char: str) -> str:
    """Go's `quoteChar`: a byte as the scanner names it, `'x'`, `'\\n'`, `'\\''`, `'"'`."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    quoted = json.dumps(char, ensure_ascii=False)[1:-1]
    if char == "\t":
        quoted = "\\t"
    elif not char.isprintable() and len(quoted) == 1:
        quoted = f"\\x{ord(char):02x}"
    return f"'{quoted}'"


def _innermost(text: str, end: int) -> str:
    """The container open at `end` (`{` or `[`; "" at the top level), strings skipped."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text[:end]:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _literal_error(text: str, pos: int) -> str:
    word = _LITERALS[text[pos]]
    for i, wanted in enumerate(word[1:], start=1):
        if pos + i >= len(text):
            return UNEXPECTED_END
        if text[pos + i] != wanted:
            found, expected = quote_char(text[pos + i]), quote_char(wanted)
            return f"invalid character {found} in literal {word} (expecting {expected})"
    return f"invalid character {quote_char(text[pos + len(word)])} after top-level value"


def go_syntax_error(text: str, exc: json.JSONDecodeError) -> str:
    """The encoding/json error Go reports for the same malformed document."""
    pos = exc.pos
    if pos >= len(text) or exc.msg.startswith("Unterminated string"):
        return UNEXPECTED_END
    char = quote_char(text[pos])
    msg = exc.msg
    if msg == "Expecting value":
        if text[pos] in _LITERALS:
            return _literal_error(text, pos)
        if text[pos] == "-":
            if pos + 1 >= len(text):
                return UNEXPECTED_END
            return f"invalid character {quote_char(text[pos + 1])} in numeric literal"
        return f"invalid character {char} looking for beginning of value"
    if msg.startswith("Expecting property name"):
        return f"invalid character {char} looking for beginning of object key string"
    if msg == "Expecting ':' delimiter":
        return f"invalid character {char} after object key"
    if msg == "Expecting ',' delimiter":
        if _innermost(text, pos) == "{":
            return f"invalid character {char} after object key:value pair"
        return f"invalid character {char} after array element"
    if msg == "Extra data":
        return f"invalid character {char} after top-level value"
    if msg.startswith("Invalid control character"):
        return f"invalid character {char} in string literal"
    if msg.startswith("Invalid \\u"):
        start = text.rfind("\\u", 0, pos + 1) + 2  # the hex digits after the escape
        for digit in text[start : start + 4]:
            if digit not in string.hexdigits:
                return f"invalid character {quote_char(digit)} in \\u hexadecimal character escape"
        return UNEXPECTED_END
    if msg.startswith("Invalid \\escape"):
        # Python points at the backslash; Go names the character after it.
        return f"invalid character {quote_char(text[pos + 1])} in string escape code"
    return f"invalid character {char} looking for beginning of value"


def go_type(value: object) -> str:
    """The JSON type as Go's UnmarshalTypeError names it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def go_unmarshal_map_error(raw: bytes) -> str | None:
    """`json.Unmarshal(raw, &map[string]interface{}{})`'s error text, None when it succeeds
    (the apiserver's check of a docker config secret)."""
    text = raw.decode("utf-8", errors="replace")  # Go reads invalid UTF-8 as U+FFFD
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return go_syntax_error(text, exc)
    if value is None or isinstance(value, dict):
        return None
    return (
        f"json: cannot unmarshal {go_type(value)} into Go value of type map[string]interface {{}}"
    )


def summarize(raw: bytes, limit: int = 30) -> str:
    """The apiserver's `summarizeData`: an object's first bytes as text, anything else hex."""
    if not raw:
        return "<empty>"
    if raw[:1] == b"{":
        text = raw[:limit].decode("utf-8", errors="replace")
        return text + " ..." if len(raw) > limit else text
    return raw[:limit].hex() + (" ..." if len(raw) > limit else "")
