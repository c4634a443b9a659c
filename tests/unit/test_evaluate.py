from __future__ import annotations

import numpy as np
import pytest

from classifiers.evaluate import curve, oracle_score, random_curve, summarise


def test_perfect_router_on_a_tiny_case() -> None:
    # Prompt 0: only strong is right; 1: both right; 2: both wrong; 3: only strong right.
    weak, strong = [0, 1, 0, 0], [1, 1, 0, 1]
    c = curve([0.9, 0.1, 0.2, 0.8], weak, strong)
    assert c.q_weak == 0.25 and c.q_strong == 0.75
    assert list(c.quality) == [0.25, 0.5, 0.75, 0.75, 0.75]
    assert list(c.pgr()) == [0.0, 0.5, 1.0, 1.0, 1.0]
    assert c.cpt(0.5) == 0.25 and c.cpt(0.95) == 0.5
    assert c.apgr() == pytest.approx((0.25 + 0.75 + 1.0 + 1.0) / 4)


def test_random_is_the_diagonal_and_oracle_bounds_everything() -> None:
    rng = np.random.default_rng(0)
    weak = rng.integers(0, 2, 500).astype(float)
    strong = np.maximum(weak, rng.integers(0, 2, 500)).astype(float)
    rand = summarise("random", random_curve(weak, strong))
    assert rand.apgr == pytest.approx(0.5) and rand.cpt50 == pytest.approx(0.5, abs=0.002)
    best = curve(oracle_score(weak, strong), weak, strong).apgr()
    for _ in range(5):
        assert curve(rng.random(500), weak, strong).apgr() <= best + 1e-12
    # The oracle's PGR climbs linearly to 1 over the share g of prompts where strong beats weak: APGR = 1 - g/2.
    g = float(np.mean(strong > weak))
    assert best == pytest.approx(1 - g / 2, abs=1 / 500)


def test_inverted_router_is_worse_than_random() -> None:
    weak, strong = [0, 0, 1, 1], [1, 1, 1, 1]
    assert curve([1, 1, 0, 0], weak, strong).apgr() > 0.5 > curve([0, 0, 1, 1], weak, strong).apgr()


def test_equal_models_have_no_pgr() -> None:
    with pytest.raises(ValueError, match="same mean quality"):
        curve([0.1, 0.2], [1, 0], [0, 1]).pgr()


def test_topic_oracle_knows_topics_not_items() -> None:
    from classifiers.evaluate import topic_oracle_score

    topics = ["algebra", "algebra", "law", "law", "law"]
    weak = [0.0, 1.0, 1.0, 1.0, 0.0]
    strong = [1.0, 1.0, 1.0, 0.0, 1.0]
    score = topic_oracle_score(topics, weak, strong)
    assert score.tolist() == [0.5, 0.5, 0.0, 0.0, 0.0]  # each topic's mean gain, the same for all its items
    one_topic = topic_oracle_score(["t"] * 5, weak, strong)
    assert (
        curve(one_topic.tolist(), weak, strong).apgr() < curve(oracle_score(weak, strong).tolist(), weak, strong).apgr()
    )


def test_ties_count_as_a_random_order_not_the_input_order() -> None:
    weak = [0.0, 0.0, 1.0, 0.0]
    strong = [1.0, 1.0, 0.0, 1.0]
    constant = curve([0.3] * 4, weak, strong)
    assert constant.apgr() == pytest.approx(random_curve(weak, strong).apgr())
    # ... whichever order the rows come in.
    assert curve([0.3] * 4, weak[::-1], strong[::-1]).apgr() == pytest.approx(constant.apgr())
    # A partial order still counts: the tie only spans the last two rows.
    part = curve([1.0, 0.9, 0.1, 0.1], weak, strong)
    assert part.quality.tolist() == pytest.approx([0.25, 0.5, 0.75, 0.75, 0.75])  # gains 1, 1, then (-1 + 1) / 2
