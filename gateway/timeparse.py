"""Points in time (epoch seconds or ISO 8601) as given on URLs and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime


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
