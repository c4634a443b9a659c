from __future__ import annotations

import pytest

from gateway.policy_file import load
from gateway.settings import PACKAGE_ROOT
from router.policy import Price, TiergateConfig
from router.pricing import PriceTable, Usage, cost_usd
from router.select import Decision, Needs, NoModelAvailable, NotAllowed, Steering, Unsatisfiable, direct, select
from tests.policies import config, config_dict


def _select(
    score: float, needs: Needs | None = None, unavailable: frozenset[str] = frozenset(), **pol: object
) -> Decision:
    cfg = config(**pol)
    return select(cfg, cfg.policies["default"], score, needs or Needs(), PriceTable(cfg, {}), unavailable)


@pytest.mark.parametrize(
    ("score", "tier", "first"),
    [(0.0, 0, "local"), (0.349, 0, "local"), (0.35, 1, "mid"), (0.69, 1, "mid"), (0.7, 2, "big"), (1.0, 2, "big")],
)
def test_score_maps_to_min_tier_and_cheapest_adequate(score: float, tier: int, first: str) -> None:
    d = _select(score)
    assert d.min_tier == tier
    assert d.chain[0].name == first
    assert all(m.tier >= tier for m in d.chain)
    assert not d.degraded


def test_chain_is_cheapest_first_so_fallback_escalates_in_price() -> None:
    assert [m.name for m in _select(0.5).chain] == ["mid", "mid-b", "big"]


def test_capabilities_filter_candidates() -> None:
    d = _select(0.0, Needs(tools=True))
    assert [m.name for m in d.chain] == ["mid", "big"]
    assert d.skipped["local"] == "no tool calling"
    assert [m.name for m in _select(0.0, Needs(vision=True)).chain] == ["big"]


@pytest.mark.parametrize(
    ("need", "text"),
    [("audio_input", "no audio input"), ("files", "no file input"), ("audio_output", "no audio output")],
)
def test_audio_and_files_go_only_to_models_declaring_them(need: str, text: str) -> None:
    cfg = config()
    doc = cfg.model_dump()
    doc["models"][3]["capabilities"][need] = True  # big
    able = type(cfg).model_validate(doc)
    d = select(able, able.policies["default"], 0.0, Needs(**{need: True}), PriceTable(able, {}), ())
    assert [m.name for m in d.chain] == ["big"]
    assert d.skipped["local"] == text
    with pytest.raises(Unsatisfiable) as e:  # nobody declares it: the client's to change, not a wait
        _select(0.0, Needs(**{need: True}))
    assert e.value.need == need


def test_a_model_capped_at_fewer_choices_than_asked_is_passed_over() -> None:
    cfg = config()
    doc = cfg.model_dump()
    doc["models"][0]["capabilities"]["max_choices"] = 4  # local, as llama-server with -np 4
    capped = type(cfg).model_validate(doc)
    pol, table = capped.policies["default"], PriceTable(capped, {})
    assert select(capped, pol, 0.0, Needs(choices=4), table, ()).chain[0].name == "local"
    d = select(capped, pol, 0.0, Needs(choices=5), table, ())
    assert d.chain[0].name == "mid" and d.skipped["local"] == "at most 4 choices (n) per request"
    assert (
        select(cfg, cfg.policies["default"], 0.0, Needs(choices=128), PriceTable(cfg, {}), ()).chain[0].name == "local"
    )


def test_context_window_counts_prompt_and_expected_output() -> None:
    d = _select(0.0, Needs(context_tokens=1900, expected_output_tokens=256))
    assert d.chain[0].name == "mid"
    assert "context window 2048" in d.skipped["local"]


def test_a_need_no_allowed_model_has_is_unsatisfiable_not_unavailable() -> None:
    with pytest.raises(Unsatisfiable, match="local: context window 2048") as long:
        _select(0.0, Needs(context_tokens=10**7))
    assert long.value.need == "context"
    with pytest.raises(Unsatisfiable) as mixed:
        _select(0.0, Needs(vision=True), allowed_models=["local", "mid"])
    assert mixed.value.need == "vision"
    with pytest.raises(Unsatisfiable) as differ:
        _select(0.0, Needs(vision=True, context_tokens=10**7))
    assert differ.value.need is None  # local/mid lack vision first, big lacks the window


def test_the_shipped_local_model_serves_json_mode_when_the_hosted_ones_are_down() -> None:
    cfg = load(PACKAGE_ROOT / "config" / "tiergate.yaml")
    hosted = frozenset(m.name for m in cfg.models if not m.local)
    d = select(cfg, cfg.policies["default"], 0.0, Needs(json_mode=True), PriceTable(cfg, {}), hosted)
    assert d.chain[0].name == "smollm2-local"


def test_a_capable_model_that_is_down_is_unavailable_not_unsatisfiable() -> None:
    with pytest.raises(NoModelAvailable):
        _select(0.0, Needs(vision=True), unavailable=frozenset({"big"}))


def test_unavailable_is_skipped_and_best_effort_degrades_to_strongest_available() -> None:
    d = _select(0.9, unavailable=frozenset({"big"}))
    assert d.degraded
    assert [m.name for m in d.chain][:2] == ["mid", "mid-b"]
    assert "best effort" in d.reason


def test_best_effort_puts_the_weaker_models_after_the_adequate_ones_and_reject_does_not() -> None:
    # Tried only when every adequate model fails its call (gateway/calls.py), strongest first, cheapest in a tier.
    d = _select(0.9)
    assert [m.name for m in d.chain] == ["big"] and not d.degraded
    assert [m.name for m in d.weaker] == ["mid", "mid-b", "local"]
    assert "tier >= 2" in d.reason
    assert _select(0.9, on_unavailable="reject").weaker == ()
    assert _select(0.0).weaker == ()  # nothing is weaker than tier 0
    assert [m.name for m in _select(0.5, unavailable=frozenset({"local"})).weaker] == []
    assert [m.name for m in _cool(0.9, {"mid"}).weaker] == ["mid-b", "local"]  # passed over stays passed over
    d = _select(0.9, unavailable=frozenset({"big"}))  # none adequate is up: the weaker ones are the chain itself
    assert d.degraded and [m.name for m in d.chain] == ["mid", "mid-b", "local"] and d.weaker == ()


def test_reject_policy_refuses_instead_of_degrading() -> None:
    with pytest.raises(NoModelAvailable, match="tier >= 2"):
        _select(0.9, unavailable=frozenset({"big"}), on_unavailable="reject")


def test_ties_break_deterministically_by_tier_then_name() -> None:
    cfg = config()
    same = {m.name: Price(input_per_mtok=1, output_per_mtok=1) for m in cfg.models}
    table = PriceTable(
        cfg.model_copy(update={"models": [m.model_copy(update={"price": same[m.name]}) for m in cfg.models]}), {}
    )
    d = select(cfg, cfg.policies["default"], 0.5, Needs(), table, ())
    assert [m.name for m in d.chain] == ["mid", "mid-b", "big"]


def test_direct_requests() -> None:
    cfg = config()
    pol = cfg.policies["default"]
    assert direct(cfg, pol, "mid", ()).chain[0].name == "mid"
    with pytest.raises(NoModelAvailable):
        direct(cfg, pol, "mid", {"mid"})
    with pytest.raises(NotAllowed):
        direct(cfg, pol.model_copy(update={"allow_direct": False}), "mid", ())
    with pytest.raises(KeyError):
        direct(cfg, pol, "nope", ())


@pytest.mark.parametrize(
    ("need", "capability"),
    [("vision", "vision"), ("audio_input", "audio_input"), ("files", "files"), ("audio_output", "audio_output"),
     ("forced_call", "tools")],
)  # fmt: skip
def test_direct_requests_need_the_content_they_hold(need: str, capability: str) -> None:
    """Images and audio only where the model takes them: its server would fail them (llama-server: a 500, counted
    against it); an answer in audio only from a model that speaks, and a required tool call only from one that calls
    tools (another would answer in text without a word: llama-server with SmolLM2 does, under `make serve`)."""
    cfg = config()
    content = Needs(**{need: True})
    with pytest.raises(Unsatisfiable) as e:
        direct(cfg, cfg.policies["default"], "mid-b", (), content)
    assert e.value.need == need
    assert "'mid-b'" in e.value.reason
    doc = cfg.model_dump()
    doc["models"][2]["capabilities"][capability] = True
    able = type(cfg).model_validate(doc)
    assert [m.name for m in direct(able, able.policies["default"], "mid-b", (), content).chain] == ["mid-b"]
    # What a named model lacks beyond content stays the client's choice (its server may do better than declared).
    assert direct(cfg, cfg.policies["default"], "mid-b", (), Needs(tools=True, context_tokens=10**6)).chain


def test_prices_policy_first_then_reference_then_zero_and_listed() -> None:
    cfg = config()
    big = cfg.models[3].model_copy(update={"price": None, "litellm_model": "openai/gpt-4o"})
    cfg2 = cfg.model_copy(update={"models": [*cfg.models[:3], big]})
    table = PriceTable(cfg2, {"gpt-4o": Price(input_per_mtok=2.5, output_per_mtok=10)})
    assert table.price("big").input_per_mtok == 2.5
    assert table.cost("mid", Usage(1_000_000, 2_000_000)) == pytest.approx(0.5 + 3.0)
    assert PriceTable(cfg2, {}).unpriced == ["big"]
    assert cost_usd(Price(input_per_mtok=3, output_per_mtok=6), Usage(100, 10)) == pytest.approx(360e-6)


def test_embedding_models_are_priced_apart_policy_first_then_reference() -> None:
    raw = config_dict()
    raw["embedding_models"] = [
        {"name": "mid", "litellm_model": "openai/text-embedding-3-small"},  # a chat model's name: priced apart
        {"name": "own", "litellm_model": "openai/x", "price": {"input_per_mtok": 1.0, "output_per_mtok": 0.0}},
        {"name": "nowhere", "litellm_model": "openai/unknown-embedder"},
    ]
    cfg = TiergateConfig.model_validate(raw)
    table = PriceTable(cfg, {"text-embedding-3-small": Price(input_per_mtok=0.02, output_per_mtok=0.0)})
    assert table.embedding_cost("mid", 1000) == pytest.approx(0.02 / 1000)
    assert table.cost("mid", Usage(1000, 0)) == pytest.approx(0.5 / 1000)  # the chat model's own price still
    assert table.embedding_cost("own", 1000) == pytest.approx(1.0 / 1000)
    assert table.embedding_cost("all-minilm-l6-v2", 1000) == 0.0  # in process
    assert table.embedding_cost("nowhere", 1000) == 0.0 and table.unpriced == ["nowhere"]


def test_prompt_tokens_read_from_the_providers_cache_cost_its_cached_price() -> None:
    cached = Price(input_per_mtok=2.5, output_per_mtok=10, cached_input_per_mtok=1.25)
    assert cost_usd(cached, Usage(1000, 100, cached_tokens=800)) == pytest.approx((200 * 2.5 + 800 * 1.25 + 1000) / 1e6)
    assert cost_usd(cached, Usage(10, 0, cached_tokens=50)) == pytest.approx(10 * 1.25 / 1e6)  # never above the prompt
    plain = Price(input_per_mtok=2.5, output_per_mtok=10)  # no cached price: no discount
    assert cost_usd(plain, Usage(1000, 100, cached_tokens=800)) == pytest.approx((1000 * 2.5 + 1000) / 1e6)


COOLING = "cooling down after repeated failures"


def _cool(score: float, cooling: set[str], **pol: object) -> Decision:
    cfg = config(**pol)
    over = dict.fromkeys(cooling, COOLING)
    return select(cfg, cfg.policies["default"], score, Needs(), PriceTable(cfg, {}), frozenset(), over)


def test_a_cooling_model_is_passed_over_like_an_unavailable_one() -> None:
    d = _cool(0.5, {"mid"})
    assert [m.name for m in d.chain] == ["mid-b", "big"]
    assert d.skipped["mid"] == "cooling down after repeated failures"
    d = _cool(0.0, {"local"})  # tier 0 cooling: the cheapest adequate above it answers, not degraded
    assert d.chain[0].name == "mid" and not d.degraded
    d = _cool(0.9, {"big"})  # the only adequate one cooling: best effort with the strongest weaker ones
    assert d.degraded and [m.name for m in d.chain] == ["mid", "mid-b", "local"]


def test_when_everything_is_cooling_it_is_tried_all_the_same_rather_than_refused() -> None:
    d = _cool(0.5, {"local", "mid", "mid-b", "big"})
    assert [m.name for m in d.chain] == ["mid", "mid-b", "big"]
    assert d.reason.endswith(f"(every other choice is passed over for now too: {COOLING})")
    # reject refuses to degrade, not to try: its adequate model cooling down is still tried
    d = _cool(0.9, {"big"}, on_unavailable="reject")
    assert [m.name for m in d.chain] == ["big"]
    with pytest.raises(NoModelAvailable):  # unavailable (no key) stays a refusal under reject
        cfg = config(on_unavailable="reject")
        select(cfg, cfg.policies["default"], 0.9, Needs(), PriceTable(cfg, {}), {"big"}, {"mid": COOLING})


def test_each_model_passed_over_says_its_own_reason() -> None:
    cfg = config()
    over = {"local": COOLING, "mid": "full (max_concurrency calls in flight)"}
    d = select(cfg, cfg.policies["default"], 0.0, Needs(), PriceTable(cfg, {}), frozenset(), over)
    assert d.chain[0].name == "mid-b" and d.skipped == over
    d = select(cfg, cfg.policies["default"], 0.0, Needs(), PriceTable(cfg, {}), frozenset({"mid-b", "big"}), over)
    assert d.chain[0].name == "local"  # both passed over, nothing else up: tried all the same, cheapest first
    assert "cooling down after repeated failures or full (max_concurrency calls in flight)" in d.reason


def test_the_request_may_raise_the_tier_and_cap_the_estimated_cost() -> None:
    cfg = config()
    prices = PriceTable(cfg, {})
    d = select(cfg, cfg.policies["default"], 0.0, Needs(), prices, frozenset(), steering=Steering(min_tier=2))
    assert d.chain[0].name == "big" and d.reason.startswith("score 0.000 and the request's min tier need tier >= 2")
    d = select(cfg, cfg.policies["default"], 0.9, Needs(), prices, frozenset(), steering=Steering(min_tier=1))
    assert d.reason.startswith("score 0.900 needs tier >= 2")  # it only raises the tier
    needs = Needs(context_tokens=1000, expected_output_tokens=1000)  # mid $0.002, mid-b $0.0021, big $0.02
    d = select(cfg, cfg.policies["default"], 0.5, needs, prices, frozenset(), steering=Steering(max_cost_usd=0.0021))
    assert [m.name for m in d.chain] == ["mid", "mid-b"] and "over the request's max cost $0.0021" in d.skipped["big"]
    d = select(cfg, cfg.policies["default"], 0.9, needs, prices, frozenset(), steering=Steering(max_cost_usd=0.003))
    assert d.degraded and d.chain[0].name in ("mid", "mid-b")  # best effort within the cap
