"""Router quality in RouteLLM's terms: quality against the share of calls sent to the strong model.

For a router score r (higher = send to the strong model) and a strong-call share c, the top ceil(c·N) prompts by r
go to the strong model and the rest to the weak one (equal scores in random order: expected values); quality(c)
is the mean outcome of that assignment. PGR(c) = (quality(c) - quality(weak)) / (quality(strong) - quality(weak));
APGR is the area under PGR over c in [0, 1] (exact: every c = k/N, trapezoid rule); CPT(x) is the smallest c with
PGR(c) >= x. A random router has PGR(c) = c in expectation, so APGR 0.5 and CPT(x) = x.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vec = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Curve:
    """Strong-call shares (0..1, N+1 points) and the quality the router reaches at each."""

    share: Vec
    quality: Vec
    q_weak: float
    q_strong: float

    def pgr(self) -> Vec:
        gap = self.q_strong - self.q_weak
        if abs(gap) < 1e-12:
            raise ValueError("the strong and weak models have the same mean quality: PGR is undefined")
        out: Vec = (self.quality - self.q_weak) / gap
        return out

    def apgr(self) -> float:
        return float(np.trapezoid(self.pgr(), self.share))

    def cpt(self, target: float) -> float:
        """Smallest strong-call share at which PGR reaches `target` (1.0 if it never does)."""
        hit = np.nonzero(self.pgr() >= target - 1e-12)[0]
        return float(self.share[hit[0]]) if hit.size else 1.0


def curve(router_score: Sequence[float], weak: Sequence[float], strong: Sequence[float]) -> Curve:
    r = np.asarray(router_score, dtype=np.float64)
    w = np.asarray(weak, dtype=np.float64)
    s = np.asarray(strong, dtype=np.float64)
    n = len(r)
    if not (len(w) == len(s) == n) or n == 0:
        raise ValueError("router scores and outcomes must be non-empty and of equal length")
    order = np.argsort(-r, kind="stable")
    gain = (s - w)[order]
    # Tied scores give the router no order among those prompts: each of them gets the tie group's mean gain, the
    # expected curve under a random order within ties (not the input order, which is arbitrary: kNN's scores are
    # multiples of 1/k, a constant score ties everything).
    rs = r[order]
    starts = np.flatnonzero(np.concatenate([[True], rs[1:] != rs[:-1]]))
    sums = np.add.reduceat(gain, starts)
    sizes = np.diff(np.concatenate([starts, [n]]))
    gain = np.repeat(sums / sizes, sizes)
    quality = (w.sum() + np.concatenate([[0.0], np.cumsum(gain)])) / n
    share = np.arange(n + 1, dtype=np.float64) / n
    return Curve(share, quality, float(w.mean()), float(s.mean()))


def random_curve(weak: Sequence[float], strong: Sequence[float]) -> Curve:
    """The expected curve of a router that picks prompts at random: a straight line."""
    w, s = float(np.mean(weak)), float(np.mean(strong))
    share = np.linspace(0.0, 1.0, len(weak) + 1)
    return Curve(share, w + share * (s - w), w, s)


def oracle_score(weak: Sequence[float], strong: Sequence[float]) -> Vec:
    """The best possible router: strong exactly where it gains the most."""
    out: Vec = np.asarray(strong, dtype=np.float64) - np.asarray(weak, dtype=np.float64)
    return out


def topic_oracle_score(topics: Sequence[str], weak: Sequence[float], strong: Sequence[float]) -> Vec:
    """Each prompt scored by its own topic's mean gain (strong minus weak) over these very rows: an upper bound
    for any router that knows the topic (an MMLU subject, a task) and nothing about the item within it. A cheat
    by construction, reported beside the routers to show how much of a split's APGR topic alone can explain."""
    gain = np.asarray(strong, dtype=np.float64) - np.asarray(weak, dtype=np.float64)
    t = np.asarray(topics)
    out: Vec = np.zeros(len(gain))
    for topic in np.unique(t):
        m = t == topic
        out[m] = gain[m].mean()
    return out


@dataclass(frozen=True)
class Summary:
    name: str
    apgr: float
    cpt50: float
    cpt80: float
    cpt95: float


def summarise(name: str, c: Curve) -> Summary:
    return Summary(name, c.apgr(), c.cpt(0.5), c.cpt(0.8), c.cpt(0.95))
