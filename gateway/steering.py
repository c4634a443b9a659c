"""Per-request routing controls an app may send as headers, beyond what its policy says (router/select.py:
Steering): `x-tiergate-min-tier: 2` (at least that tier: the app knows the task is hard) and
`x-tiergate-max-cost-usd: 0.01` (no model whose estimated cost for this request is higher)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from gateway.errors import InvalidRequest
from router.select import NO_STEERING, Steering

MIN_TIER = "x-tiergate-min-tier"
MAX_COST = "x-tiergate-max-cost-usd"


def parse(headers: Mapping[str, str] | None) -> Steering:
    """The request's steering (none for most requests: two dictionary probes); raises InvalidRequest naming the
    header."""
    if not headers or (MIN_TIER not in headers and MAX_COST not in headers):
        return NO_STEERING
    tier = 0
    if (raw := headers.get(MIN_TIER)) is not None:
        if not raw.strip().isascii() or not raw.strip().isdigit() or int(raw) > 9:
            raise InvalidRequest(f"'{MIN_TIER}' must be a tier from 0 to 9.", MIN_TIER, "invalid_value")
        tier = int(raw)
    cap = None
    if (raw := headers.get(MAX_COST)) is not None:
        try:
            cap = float(raw)
        except ValueError:
            cap = math.nan
        if not (math.isfinite(cap) and cap > 0):
            raise InvalidRequest(f"'{MAX_COST}' must be a positive number of US dollars.", MAX_COST, "invalid_value")
    return Steering(tier, cap)
