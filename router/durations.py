"""Durations as operators write them ("30m", "24h", "7d"), in seconds: for the policy file and the CLI alike."""

from __future__ import annotations

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
