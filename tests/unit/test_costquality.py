"""Cost-quality routing measures (classifiers/costquality.py) on small cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers.costquality import Point, aiq, choose, cost_to_match, hull, oracle, quality_at, singles, sweep


def test_choose_takes_the_cheapest_trusted_model_else_the_most_trusted() -> None:
    p = np.array([[0.9, 0.6, 0.95], [0.2, 0.3, 0.1]])
    cost = np.array([[3.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    assert choose(p, cost, 0.5).tolist() == [1, 1]  # row 2: nobody reaches 0.5, so the most trusted (0.3)
    assert choose(p, cost, 0.7).tolist() == [2, 1]
    assert choose(p, cost, 0.0).tolist() == [1, 0]


def test_hull_drops_dominated_and_concave_points_and_interpolates() -> None:
    pts = [Point(1, 0.5), Point(2, 0.55), Point(3, 0.8), Point(4, 0.7), Point(5, 0.9)]
    h = hull(pts, Point(0.5, 0.4))
    assert [(p.cost, p.quality) for p in h] == [(0.5, 0.4), (1, 0.5), (3, 0.8), (5, 0.9)]
    assert quality_at(h, 2.0) == pytest.approx(0.65)
    assert quality_at(h, 0.1) == 0.4 and quality_at(h, 9.0) == 0.9
    assert cost_to_match(h, 0.85) == pytest.approx(4.0)
    assert cost_to_match(h, 0.95) is None
    assert aiq([Point(0, 0.7)], 0.0, 1.0) == pytest.approx(0.7)


def test_the_oracle_is_never_below_the_single_models() -> None:
    rng = np.random.default_rng(0)
    outcome = (rng.random((400, 5)) < np.array([0.3, 0.5, 0.6, 0.7, 0.85])).astype(float)
    cost = np.tile(np.array([1.0, 2.0, 4.0, 8.0, 16.0]), (400, 1))
    floor = Point(1.0, float(outcome[:, 0].mean()))
    h_oracle, h_single = hull(oracle(outcome, cost), floor), hull(singles(outcome, cost), floor)
    for c in np.linspace(1, 16, 31):
        assert quality_at(h_oracle, float(c)) >= quality_at(h_single, float(c)) - 1e-12
    # A router that knows the outcomes exactly, swept over thresholds, reaches the best model's quality cheaper.
    perfect = sweep(outcome, outcome, cost)
    best = float(outcome[:, 4].mean())
    match = cost_to_match(hull(perfect, floor), best)
    assert match is not None and match < 16.0
