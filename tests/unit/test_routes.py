"""Routes by example (router/policy.py: Route, router/routes.py, classifiers/route_examples.py): validation, which
route a prompt matches, what routing then does, and the classifier's one encoder call serving score and route."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from classifiers.features import clip
from classifiers.model import LinearComplexityModel
from classifiers.route_examples import RouteExamples
from gateway.classify import ClassifierService
from router.policy import Policy, Route, TiergateConfig
from router.pricing import PriceTable
from router.routes import RouteMatch, match
from router.select import Needs, select
from tests.fakes.encoder import HashEncoder


def route(name: str, tier: int, min_similarity: float = 0.8, examples: tuple[str, ...] = ("hi",)) -> Route:
    return Route(name=name, examples=list(examples), tier=tier, min_similarity=min_similarity)


def policy(**kw: Any) -> dict[str, Any]:
    return {"thresholds": [0.35, 0.7], "baseline_model": "big", **kw}


def test_a_policy_refuses_duplicate_route_names_and_tiers_it_does_not_have() -> None:
    ok = Policy.model_validate(policy(routes=[{"name": "greeting", "examples": ["hi"], "tier": 2}]))
    assert ok.routes[0].min_similarity == 0.8
    with pytest.raises(ValidationError, match="duplicate names"):
        Policy.model_validate(policy(routes=[{"name": "a", "examples": ["x"], "tier": 0}] * 2))
    with pytest.raises(ValidationError, match="tier above the policy's highest"):
        Policy.model_validate(policy(routes=[{"name": "a", "examples": ["x"], "tier": 3}]))
    with pytest.raises(ValidationError):
        Policy.model_validate(policy(routes=[{"name": "a", "examples": [], "tier": 0}]))
    with pytest.raises(ValidationError):
        Policy.model_validate(policy(routes=[{"name": "a", "examples": ["x"], "tier": 0, "typo": 1}]))


def test_the_most_similar_route_at_or_above_its_own_bar_wins() -> None:
    routes = [route("a", 0, 0.9), route("b", 1, 0.5), route("c", 2, 0.5)]
    assert match(routes, [0.95, 0.6, 0.7], 1) == RouteMatch("a", 0, 0.95)
    assert match(routes, [0.85, 0.6, 0.7], 1) == RouteMatch("c", 2, 0.7)  # a is the closest, but under its own 0.9
    assert match(routes, [0.1, 0.6, 0.6], 1) == RouteMatch("b", 1, 0.6)  # a tie: the first in the file
    assert match(routes, [0.1, 0.2, 0.3], 1) is None
    assert match([], [], 1) is None
    with pytest.raises(ValueError):
        match(routes, [0.1], 1)


def test_a_route_held_to_the_opening_is_not_read_later_in_the_conversation() -> None:
    opening = Route(name="greeting", examples=["ok"], tier=0, min_similarity=0.5, max_turns=1)
    anywhere = route("farewell", 1, 0.5)
    assert match([opening, anywhere], [0.99, 0.6], 1) == RouteMatch("greeting", 0, 0.99)
    # "ok" after the assistant's offer asks for the work offered: the opening's route is passed over.
    assert match([opening, anywhere], [0.99, 0.6], 2) == RouteMatch("farewell", 1, 0.6)
    assert match([opening], [0.99], 3) is None
    assert Route(name="a", examples=["x"], tier=0, max_turns=3).max_turns == 3
    with pytest.raises(ValidationError):
        Route(name="a", examples=["x"], tier=0, max_turns=0)


def config() -> TiergateConfig:
    models = [
        {
            "name": name,
            "litellm_model": f"openai/{name}",
            "tier": tier,
            "price": {"input_per_mtok": p, "output_per_mtok": p},
        }
        for name, tier, p in (("small", 0, 0.1), ("mid", 1, 1.0), ("big", 2, 10.0))
    ]
    return TiergateConfig.model_validate({"models": models, "policies": {"default": policy()}})


def test_a_matched_route_sets_the_minimum_tier_in_place_of_the_score() -> None:
    cfg = config()
    pol, prices, needs = cfg.policies["default"], PriceTable(cfg, {}), Needs()
    by_score = select(cfg, pol, 0.9, needs, prices, ())
    assert by_score.chain[0].name == "big" and by_score.reason.startswith("score 0.900 needs tier >= 2")
    down = select(cfg, pol, 0.9, needs, prices, (), route=RouteMatch("greeting", 0, 0.93))
    assert down.chain[0].name == "small" and down.min_tier == 0
    assert down.reason.startswith("route 'greeting' (similarity 0.930) needs tier >= 0")
    up = select(cfg, pol, 0.1, needs, prices, (), route=RouteMatch("legal", 2, 0.85))
    assert [m.name for m in up.chain] == ["big"]


def test_route_examples_are_embedded_as_prompts_are_and_give_each_routes_nearest_cosine() -> None:
    enc = HashEncoder()
    long = "word " * 1000  # clipped as the classifier clips a prompt before it embeds it
    ex = RouteExamples.embed(enc, [["hi", "hello"], [long]])
    assert len(ex) == 2
    sims = ex.similarities(enc.encode(["hello"])[0])
    assert sims[0] == pytest.approx(1.0) and sims[1] < 1.0
    assert ex.similarities(enc.encode([clip(long)])[0])[1] == pytest.approx(1.0)
    assert len(RouteExamples.embed(enc, [])) == 0


def test_the_classifier_gives_score_and_embedding_from_one_encoder_call() -> None:
    enc = HashEncoder()
    weights = np.arange(enc.dim + 4, dtype=np.float32) / 10.0
    svc = ClassifierService(enc, LinearComplexityModel(weights, -0.5, enc.name, {}))
    try:
        found = asyncio.run(svc.assess("What is 2 + 2?", 1))
        assert found.score == pytest.approx(asyncio.run(svc.score("What is 2 + 2?", 1)))
        assert found.score == pytest.approx(svc.classifier.score_batch(["What is 2 + 2?"])[0].score)
        assert np.allclose(found.embedding, enc.encode([clip("What is 2 + 2?")])[0])
    finally:
        svc.close()
