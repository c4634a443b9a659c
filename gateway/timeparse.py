"""Durations ("30m", "24h", "7d") and points in time (epoch seconds or ISO 8601) as given on URLs and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration_s(text: str) -> float:
    """Seconds in a duration like 30m, 24h or 7d; ValueError otherwise."""
    t = text.strip()
    if len(t) < 2 or t[-1] not in _UNITS:
        raise ValueError(f"expected a duration like 30m, 24h or 7d, got {text!r}")
    try:
        n = float(t[:-1])
    except ValueError:
        raise ValueError(f"expected a duration like 30m, 24h or 7d, got {text!r}") from None
    if not n > 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return n * _UNITS[t[-1]]


def instant(text: str) -> float:
    """Epoch seconds from epoch seconds or an ISO 8601 time (UTC when it names no zone); ValueError otherwise."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected epoch seconds or an ISO 8601 time, got {text!r}") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
