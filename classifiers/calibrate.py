"""Thresholds for target shares of traffic per tier (RouteLLM's quantile idea), from scores on reference prompts;
and a cascade's `min_confidence` for a target share of kept drafts, from recorded draft confidences."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def thresholds_for_shares(
    scores: Sequence[float], shares: Sequence[float], weights: Sequence[float] | None = None
) -> list[float]:
    """`shares[i]` of the (weighted) prompts should need tier i; returns len(shares)-1 increasing thresholds.

    Threshold i is the first score past the cumulative share of tiers 0..i: a score equal to a threshold already
    needs the higher tier, so exactly that share of prompts scores below it.
    """
    if len(shares) < 2 or any(s < 0 for s in shares) or abs(sum(shares) - 1.0) > 1e-6:
        raise ValueError(f"shares must be >= 2 non-negative numbers summing to 1, got {list(shares)}")
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        raise ValueError("no scores to calibrate on")
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(s, kind="stable")
    cum = np.cumsum(w[order]) / w.sum()
    out: list[float] = []
    for q in np.cumsum(shares)[:-1]:
        i = min(int(np.searchsorted(cum, q + 1e-9, side="left")), s.size - 1)
        t = float(s[order][i])
        # Thresholds must rise strictly and stay inside (0, 1), as the policy requires.
        t = min(max(t, (out[-1] + 1e-4) if out else 1e-4), 1 - 1e-4)
        out.append(round(t, 4))
    return out


def achieved_shares(
    scores: Sequence[float], thresholds: Sequence[float], weights: Sequence[float] | None = None
) -> list[float]:
    """The (weighted) share of these scores each tier gets under `thresholds`, by the policy's rule (a score at a
    threshold needs the tier above it: router/policy.py `min_tier`). Ties and rounding keep it from the shares
    asked for whenever many prompts share a score, so calibration reports it beside them."""
    s = np.asarray(scores, dtype=np.float64)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
    tiers = np.searchsorted(np.asarray(thresholds, dtype=np.float64), s, side="right")
    got = np.bincount(tiers, weights=w, minlength=len(thresholds) + 1) / w.sum()
    return [float(x) for x in got]


def min_confidence_for_keep(confidences: Sequence[float], keep_share: float) -> float:
    """The confidence at or above which `keep_share` of these drafts lie: the cascade keeps that share.

    Ties at the cut keep every tied draft (a threshold cannot split equal confidences). Kept inside (0, 1)."""
    if not 0.0 < keep_share < 1.0:
        raise ValueError(f"keep share must lie strictly between 0 and 1, got {keep_share}")
    c = np.sort(np.asarray(confidences, dtype=np.float64))[::-1]
    if c.size == 0:
        raise ValueError("no judged drafts to calibrate on")
    t = float(c[max(0, int(np.ceil(keep_share * c.size - 1e-9)) - 1)])  # 0.55 * 100 is 55.000000000000007
    return round(min(max(t, 1e-4), 1 - 1e-4), 4)
