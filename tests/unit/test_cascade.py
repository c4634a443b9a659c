"""Cascade mode's pure parts: who drafts, who takes over, and how a draft's confidence is read."""

from __future__ import annotations

import math

import pydantic
import pytest

from router.cascade import CascadePlan, answer_logprobs, confidence, plan
from router.pricing import PriceTable
from router.select import Needs, select
from tests.policies import config

CASCADE = {"below_score": 0.7, "min_confidence": 0.5}


def _plan(
    score: float, unavailable: frozenset[str] = frozenset(), needs: Needs | None = None, **pol: object
) -> CascadePlan | None:
    cfg = config(**({"cascade": CASCADE} | pol))
    policy, prices, n = cfg.policies["default"], PriceTable(cfg, {}), needs or Needs()
    decision = select(cfg, policy, score, n, prices, unavailable)
    return plan(cfg, policy, score, n, prices, unavailable, decision)


def _names(p: CascadePlan | None) -> tuple[list[str], list[str]]:
    assert p is not None
    return [m.name for m in p.draft], [m.name for m in p.escalate.chain]


def test_a_prompt_the_thresholds_send_up_drafts_locally_and_escalates_to_their_choice() -> None:
    p = _plan(0.5)
    assert _names(p) == (["local"], ["mid", "mid-b", "big"])
    assert p is not None and p.escalate.weaker == ()  # best effort's weaker model is the draft's: no escalation


def test_a_prompt_the_thresholds_keep_local_escalates_to_the_next_tier() -> None:
    p = _plan(0.1)
    assert _names(p) == (["local"], ["mid", "mid-b", "big"])
    assert p is not None and p.escalate.min_tier == 1


def test_no_cascade_without_the_policy_or_above_its_score() -> None:
    assert _plan(0.5, cascade=None) is None
    assert _plan(0.7) is None  # below_score is exclusive
    assert _plan(0.95) is None


def test_the_draft_tier_is_the_cheapest_available_and_never_mixed_with_the_next() -> None:
    assert _names(_plan(0.5, unavailable=frozenset({"local"}))) == (["mid", "mid-b"], ["big"])
    # Tools needed: only mid and big have them, so mid drafts and big takes over.
    assert _names(_plan(0.1, needs=Needs(tools=True))) == (["mid"], ["big"])


def test_nothing_to_escalate_to_means_no_cascade() -> None:
    assert _plan(0.1, unavailable=frozenset({"mid", "mid-b", "big"})) is None
    assert _plan(0.1, unavailable=frozenset({"local", "mid", "mid-b"})) is None  # big alone: no cheaper draft


def test_confidence_is_the_geometric_mean_of_token_probabilities() -> None:
    body = {"choices": [{"logprobs": {"content": [{"logprob": math.log(0.5)}, {"logprob": math.log(0.125)}]}}]}
    assert confidence(answer_logprobs(body)) == pytest.approx(0.25)
    assert confidence([]) is None


@pytest.mark.parametrize(
    "body",
    [{}, {"choices": []}, {"choices": [{}]}, {"choices": [{"logprobs": None}]}, {"choices": [{"logprobs": {}}]}],
)
def test_an_answer_without_logprobs_has_no_confidence(body: dict[str, object]) -> None:
    assert confidence(answer_logprobs(body)) is None


def test_odd_token_values_cannot_raise_confidence() -> None:
    toks = [{"logprob": -float("inf")}, {"logprob": float("nan")}, {"logprob": "x"}, {"logprob": True}, "junk"]
    lps = answer_logprobs({"choices": [{"logprobs": {"content": [{"logprob": 0.0}, *toks]}}]})
    assert lps == [0.0, -100.0]  # -inf counts at a floor instead of vanishing; the rest are not numbers
    c = confidence(lps)
    assert c is not None and c < 1e-20


@pytest.mark.parametrize(
    "bad",
    [
        {"below_score": 0.0, "min_confidence": 0.5},
        {"below_score": 0.5, "min_confidence": 1.0},
        {"below_score": 0.5, "min_confidence": 0.5, "verify": True},
    ],
)
def test_bad_cascade_settings_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        config(cascade=bad)
