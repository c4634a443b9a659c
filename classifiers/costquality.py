"""Routing among many priced models, judged by cost against quality (RouterBench's view), not by one strong/weak pair.

A router gives, per prompt, a predicted success probability for every model. With a minimum quality q it sends
each prompt to the cheapest model (by that prompt's own cost) whose predicted success is at least q, or, when none
is, to the one it trusts most; sweeping q traces (mean cost, mean quality) points. Definitions used here:

- hull: the upper convex hull of a router's points together with "everything to the cheapest model" (always
  possible), made non-decreasing, since a router can mix two of its settings at random and never needs to pay
  more for less. Interpolated linearly between points and flat beyond the last.
- AIQ (RouterBench's average improvement in quality): the mean of the hull over [c_lo, c_hi], the range from the
  cheapest to the dearest single model, so every router is averaged over the same costs.
- cost to match a reference: the least mean cost at which the hull reaches the reference model's mean quality
  (None when it never does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

Mat = npt.NDArray[np.float64]
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 4)


@dataclass(frozen=True)
class Point:
    cost: float
    quality: float


def choose(p: Mat, cost: Mat, q: float) -> npt.NDArray[np.int64]:
    """Per prompt (row), the index of the cheapest model with p >= q, else of the most trusted one."""
    ok = p >= q - 1e-12
    priced = np.where(ok, cost, np.inf)
    cheapest = np.argmin(priced, axis=1)
    fallback = np.argmax(p, axis=1)
    out: npt.NDArray[np.int64] = np.where(ok.any(axis=1), cheapest, fallback).astype(np.int64)
    return out


def sweep(p: Mat, outcome: Mat, cost: Mat, thresholds: Sequence[float] = tuple(THRESHOLDS)) -> list[Point]:
    rows = np.arange(p.shape[0])
    pts = []
    for q in thresholds:
        c = choose(p, cost, float(q))
        pts.append(Point(float(cost[rows, c].mean()), float(outcome[rows, c].mean())))
    return pts


def singles(outcome: Mat, cost: Mat) -> list[Point]:
    """Each model alone: (its mean cost, its mean quality)."""
    return [Point(float(cost[:, j].mean()), float(outcome[:, j].mean())) for j in range(outcome.shape[1])]


def utility_sweep(p: Mat, outcome: Mat, cost: Mat) -> list[Point]:
    """Per prompt, the model maximising p - λ·cost (RouterBench's predictive-router rule), for λ from free to dear."""
    rows = np.arange(p.shape[0])
    pts = []
    scale = float(np.mean(cost)) or 1.0
    for lam in [0.0, *np.geomspace(1e-4, 1e4, 81)]:
        c = np.argmax(p - (lam / scale) * cost - 1e-9 * cost / scale, axis=1)  # ties: the cheaper model
        pts.append(Point(float(cost[rows, c].mean()), float(outcome[rows, c].mean())))
    return pts


def oracle(outcome: Mat, cost: Mat) -> list[Point]:
    """The best any router could do: the utility rule with the true outcomes as its predictions."""
    return utility_sweep(outcome, outcome, cost)


def hull(points: Sequence[Point], floor: Point) -> list[Point]:
    """Upper convex hull of the points plus `floor` (everything to the cheapest model), non-decreasing."""
    pts = sorted({(p.cost, p.quality) for p in [*points, floor]})
    upper: list[tuple[float, float]] = []
    for c, q in pts:
        # Keep only points on the upper-left frontier: drop any that a cheaper, better point dominates.
        if upper and q <= upper[-1][1]:
            continue
        while len(upper) >= 2:
            (c1, q1), (c2, q2) = upper[-2], upper[-1]
            if (q2 - q1) * (c - c1) <= (q - q1) * (c2 - c1):  # the middle point lies on or under the chord
                upper.pop()
            else:
                break
        upper.append((c, q))
    return [Point(c, q) for c, q in upper]


def quality_at(h: Sequence[Point], c: float) -> float:
    if c <= h[0].cost:
        return h[0].quality
    for a, b in pairwise(h):
        if c <= b.cost:
            return a.quality + (b.quality - a.quality) * (c - a.cost) / (b.cost - a.cost)
    return h[-1].quality


def aiq(h: Sequence[Point], c_lo: float, c_hi: float, steps: int = 2000) -> float:
    grid = np.linspace(c_lo, c_hi, steps)
    return float(np.mean([quality_at(h, float(c)) for c in grid]))


def cost_to_match(h: Sequence[Point], target: float) -> float | None:
    if h[0].quality >= target:
        return h[0].cost
    for a, b in pairwise(h):
        if b.quality >= target:
            return a.cost + (b.cost - a.cost) * (target - a.quality) / (b.quality - a.quality)
    return None
