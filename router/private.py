"""Find private data in a request's text: personal data and secrets a policy may keep on local models.

Each kind is a pattern plus, where the format has one, its checksum (Luhn for card numbers, ISO 7064 mod 97 for
IBANs), so a long number that merely looks like a card does not count. The point is routing, not redaction: a match
decides where a prompt may go, and what matched is never kept or shown, only its kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

Kind = Literal["email", "card", "iban", "secret", "phone", "ipv4", "us_ssn"]
DEFAULT_KINDS: tuple[Kind, ...] = ("email", "card", "iban", "secret")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(m: re.Match[str]) -> bool:
    digits = re.sub(r"[ -]", "", m.group(0))
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _iban(m: re.Match[str]) -> bool:
    s = m.group(0).replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ssn(m: re.Match[str]) -> bool:
    area, group, serial = m.group(1), m.group(2), m.group(3)
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _phone(m: re.Match[str]) -> bool:
    return 8 <= sum(c.isdigit() for c in m.group(0)) <= 15  # E.164: at most 15 digits; fewer than 8 is no number


def _always(m: re.Match[str]) -> bool:
    return True


_SECRETS = "|".join(
    (
        r"sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}",  # OpenAI, Anthropic
        r"AKIA[0-9A-Z]{16}",  # AWS access key id
        r"gh[pousr]_[A-Za-z0-9]{36,}",  # GitHub tokens
        r"github_pat_[A-Za-z0-9_]{40,}",
        r"xox[abprs]-[A-Za-z0-9-]{10,}",  # Slack
        r"AIza[0-9A-Za-z_-]{35}",  # Google API key
        r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----",
        r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",  # a JWT (header.payload.signature)
    )
)

_DETECTORS: Mapping[Kind, tuple[re.Pattern[str], Callable[[re.Match[str]], bool]]] = {
    "email": (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), _always),
    "card": (re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), _card),
    "iban": (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"), _iban),
    "secret": (re.compile(_SECRETS), _always),
    "phone": (re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?!\w)"), _phone),
    "ipv4": (re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"), _always),
    "us_ssn": (re.compile(r"\b(\d{3})-(\d{2})-(\d{4})\b"), _ssn),
}


def find(text: str, kinds: Iterable[Kind] = DEFAULT_KINDS) -> tuple[Kind, ...]:
    """The kinds of private data in `text`, in the order asked."""
    found: list[Kind] = []
    for kind in kinds:
        pattern, valid = _DETECTORS[kind]
        if any(valid(m) for m in pattern.finditer(text)):
            found.append(kind)
    return tuple(found)


def message_text(messages: Iterable[Mapping[str, Any]]) -> str:
    """Everything a request would send upstream as text: every message's content (text parts of multi-part ones),
    and the arguments of the tool calls in its history."""
    parts: list[str] = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
        for call in m.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(fn := call.get("function"), dict):
                parts.append(str(fn.get("arguments", "")))
    return "\n".join(parts)
