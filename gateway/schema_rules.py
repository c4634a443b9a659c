"""Inverted repetition ranges and empty numeric ranges in the JSON schemas and grammars a chat request carries, found
before any model sees them.

llama.cpp turns a schema's count bounds (`minLength` / `maxLength`, `minItems` / `maxItems`, ...) and a pattern's or a
grammar's `{m,n}` into grammar repetitions, and for an inverted range (m > n) its unsigned count of optional copies
underflows: the server adds rules until the kernel kills it (llama.cpp issue #23108; the fix, PR #25602, is not
merged). Seen here under `make serve`: `response_format` with `{"type": "array", "minItems": 5, "maxItems": 2}` took
llama-server to 23.6 GB of memory in well under a minute, and the OOM killer ended it; one request took the local
model away from every client and put the whole machine's memory at risk. The same came from `{"type": "string",
"minLength": 10, "maxLength": 5}`, from the pattern `^a{5,2}$`, from llama.cpp's own `json_schema` and `grammar`
parameters, and from a schema nested anywhere in `response_format`.

No value meets such a schema, and `{5,2}` does not even compile as an ECMAScript regex, so the request is refused
wherever it would be routed: a 400 naming the bound or the pattern.

Empty numeric ranges (`minimum` above `maximum`, or an exclusive bound that meets the other) are as unsatisfiable and
are refused the same way. They become no repetition, but llama.cpp builds an integer range's grammar from them and
fails while decoding: `{"type": "integer", "minimum": 9, "maximum": 3}`, even nested in an object, is answered with
a 500 ("Unexpected empty grammar stack after accepting piece"), which reads as the model failing, and six such
requests under `make serve` put the local model in cooldown for every client.
"""

from __future__ import annotations

import math
import re
from typing import Any

# Count bounds that llama.cpp's json-schema-to-grammar turns into a repetition {min,max}.
_COUNT_BOUNDS = (
    ("minLength", "maxLength"),
    ("minItems", "maxItems"),
    ("minProperties", "maxProperties"),
    ("minContains", "maxContains"),
)
# Keywords whose values are instances, not schemas: a bound or a "pattern" key in them is data.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
# `{m,n}` as a regex writes it, and as llama.cpp's grammar parser reads it (spaces allowed inside the braces).
_REGEX_RANGE = re.compile(r"\{(\d+),(\d+)\}")
_GRAMMAR_RANGE = re.compile(r"\{\s*(\d+)\s*,\s*(\d+)\s*\}")


class Inverted(Exception):
    """`param` names where the inverted range is; the message says what it is."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def check_schema(value: Any, where: str) -> None:
    """Raises Inverted for the first inverted count bound or regex repetition anywhere in `value` (a parsed schema,
    or any JSON holding schemas: `tools`, a whole `response_format`). Iterative, so no depth of nesting can exhaust
    Python's stack."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, dict):
            for lo, hi in _COUNT_BOUNDS:
                a, b = node.get(lo), node.get(hi)
                if type(a) is int and type(b) is int and a > b:  # `type is`: a bool is no bound
                    raise Inverted(f"`{lo}` ({a}) is above `{hi}` ({b}): no value can meet this schema", f"{at}.{lo}")
            _check_numeric_range(node, at)
            if isinstance(pattern := node.get("pattern"), str):
                _check_regex(pattern, f"{at}.pattern")
            if isinstance(props := node.get("patternProperties"), dict):
                for key in props:
                    _check_regex(key, f"{at}.patternProperties")
            stack.extend(
                (v, f"{at}.{k}") for k, v in node.items() if isinstance(v, dict | list) and k not in _DATA_KEYWORDS
            )
        elif isinstance(node, list):
            stack.extend((v, f"{at}.{i}") for i, v in enumerate(node) if isinstance(v, dict | list))


def _bound(node: dict[str, Any], key: str) -> float | None:
    v = node.get(key)
    return v if type(v) in (int, float) else None  # `type in`: a bool (draft 4's exclusive flags) is no bound


def _check_numeric_range(node: dict[str, Any], at: str) -> None:
    """Raises Inverted when no number, or for `"type": "integer"` no integer, lies within the node's bounds."""
    lows = [
        (v, k == "exclusiveMinimum", k) for k in ("minimum", "exclusiveMinimum") if (v := _bound(node, k)) is not None
    ]
    highs = [
        (v, k == "exclusiveMaximum", k) for k in ("maximum", "exclusiveMaximum") if (v := _bound(node, k)) is not None
    ]
    if not lows or not highs:
        return
    # The tighter bound on each side; at equal values the exclusive one is the tighter.
    lo, lo_open, lo_key = max(lows, key=lambda b: (b[0], b[1]))
    hi, hi_open, hi_key = min(highs, key=lambda b: (b[0], not b[1]))
    empty = lo > hi or (lo == hi and (lo_open or hi_open))
    if not empty and node.get("type") == "integer" and math.isfinite(lo) and math.isfinite(hi):
        first = math.floor(lo) + 1 if lo_open and lo == math.floor(lo) else math.ceil(lo)
        last = math.ceil(hi) - 1 if hi_open and hi == math.ceil(hi) else math.floor(hi)
        empty = first > last
    if empty:
        what = "integer" if node.get("type") == "integer" else "number"
        raise Inverted(
            f"no {what} is within `{lo_key}` ({lo}) and `{hi_key}` ({hi}): no value can meet this schema",
            f"{at}.{lo_key}",
        )


def _check_regex(pattern: str, param: str) -> None:
    if (bad := inverted_range(pattern, grammar=False)) is not None:
        raise Inverted(f"the pattern's repetition `{bad}` has its minimum above its maximum", param)


def check_grammar(grammar: str, param: str) -> None:
    """Raises Inverted for an inverted `{m,n}` in a GBNF grammar (llama.cpp's `grammar` parameter)."""
    if (bad := inverted_range(grammar, grammar=True)) is not None:
        raise Inverted(f"the grammar's repetition `{bad}` has its minimum above its maximum", param)


def inverted_range(text: str, grammar: bool) -> str | None:
    """The first `{m,n}` with m > n that quantifies something in `text`, or None. Skipped, as literal text: character
    classes `[...]`; in a regex (`grammar` False) any escaped character; in a GBNF grammar, quoted literals and
    `#` comments (escapes live inside those)."""
    i, n = 0, len(text)
    quantifier = _GRAMMAR_RANGE if grammar else _REGEX_RANGE
    while i < n:
        c = text[i]
        if c == "\\" and not grammar:
            i += 2
        elif c == "[":
            i = _past(text, i + 1, "]")
        elif grammar and c == '"':
            i = _past(text, i + 1, '"')
        elif grammar and c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif c == "{" and (m := quantifier.match(text, i)) is not None:
            if int(m.group(1)) > int(m.group(2)):
                return m.group(0)
            i = m.end()
        else:
            i += 1
    return None


def _past(text: str, i: int, close: str) -> int:
    """The index after the unescaped `close` that ends a class or literal begun before `i` (or the end of text)."""
    n = len(text)
    while i < n:
        if text[i] == "\\":
            i += 2
        elif text[i] == close:
            return i + 1
        else:
            i += 1
    return n
