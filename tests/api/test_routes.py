"""A policy's routes through the SDK: a prompt like one of a route's examples goes to the route's tier whatever its
score, says so in `x-tiergate-route` and in /api/route, and is still scored and recorded; a reload re-embeds only
the routes it changed. The classifier is the gateway's own service over a hash encoder (tests/fakes/encoder.py) and
a zero model, so every prompt scores 0.5 (tier 1 under the thresholds here), and only an example's exact text has a
cosine of 1 with it."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.app import rewire
from router.policy import TiergateConfig
from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream


def routed(cfg: dict[str, Any], examples: list[str]) -> dict[str, Any]:
    greeting = {"name": "greeting", "examples": examples, "tier": 0, "min_similarity": 0.99}
    cfg["policies"]["default"]["routes"] = [greeting]
    return cfg


def ask(url: str, text: str) -> Any:
    return sdk(url).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}]
    )


def test_a_prompt_like_a_routes_example_goes_to_its_tier(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(routed(api_config(fresh_upstream.base_url), ["hello", "hi there"]), score=None)
    hello = ask(server.url, "hello")
    assert hello.headers["x-tiergate-model"] == "local-small" and hello.headers["x-tiergate-route"] == "greeting"
    assert hello.headers["x-tiergate-score"] == "0.5000"  # scored all the same, from the same embedding
    other = ask(server.url, "What is the derivative of x squared?")
    assert other.headers["x-tiergate-tier"] == "1" and "x-tiergate-route" not in other.headers
    why = httpx.post(
        f"{server.url}/api/route", json={"model": "auto", "messages": [{"role": "user", "content": "hi there"}]}
    )
    body = why.json()
    assert body["route"]["name"] == "greeting" and body["route"]["similarity"] > 0.99
    assert body["min_tier"] == 0 and body["reason"].startswith("route 'greeting' (similarity 1.000) needs tier >= 0")
    assert (
        httpx.post(
            f"{server.url}/api/route", json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        ).json()["route"]
        is None
    )
    rows = {r["request_id"]: r for r in svc.ledger.rows()}
    took = rows[hello.headers["x-request-id"]]
    assert (took["tier"], took["score"], took["route"]) == (0, 0.5, "greeting")
    assert rows[other.headers["x-request-id"]]["route"] is None
    listed = httpx.get(f"{server.url}/api/requests").json()["data"]
    assert {r["request_id"]: r["route"] for r in listed}[hello.headers["x-request-id"]] == "greeting"

    # Another policy, without routes, is routed on the score alone.
    cfg = routed(api_config(fresh_upstream.base_url), ["hello", "hi there"])
    cfg["policies"]["default"].pop("routes")
    plain, _ = gateway_factory(cfg, score=None)
    assert ask(plain.url, "hello").headers["x-tiergate-tier"] == "1"


def test_a_route_held_to_the_opening_leaves_later_turns_to_the_score(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    cfg = routed(api_config(fresh_upstream.base_url), ["ok"])
    cfg["policies"]["default"]["routes"][0]["max_turns"] = 1
    server, _ = gateway_factory(cfg, score=None)
    assert ask(server.url, "ok").headers["x-tiergate-route"] == "greeting"
    later = [
        {"role": "user", "content": "Write a parser for arithmetic expressions."},
        {"role": "assistant", "content": "Shall I write the whole recursive-descent parser, with tests?"},
        {"role": "user", "content": "ok"},
    ]
    answer = sdk(server.url).chat.completions.with_raw_response.create(model="auto", messages=later)  # type: ignore[arg-type]
    assert answer.headers["x-tiergate-tier"] == "1" and "x-tiergate-route" not in answer.headers
    why = httpx.post(f"{server.url}/api/route", json={"model": "auto", "messages": later}).json()
    assert why["route"] is None and why["min_tier"] == 1


def test_a_short_later_reply_is_matched_by_its_own_words_through_the_classifier_service(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    # "hello" later in a conversation is scored with the turn before it and matched alone: two calls at once to
    # the classifier's own service (its batcher and inline path), which must both answer. (Which text each call
    # scored is tests/unit/test_follow_ups.py's to check: here every prompt scores 0.5.)
    server, svc = gateway_factory(routed(api_config(fresh_upstream.base_url), ["hello"]), score=None)
    later = [
        {"role": "user", "content": "Write a parser for arithmetic expressions."},
        {"role": "assistant", "content": "Here it is."},
        {"role": "user", "content": "hello"},
    ]
    answer = sdk(server.url).chat.completions.with_raw_response.create(model="auto", messages=later)  # type: ignore[arg-type]
    assert answer.headers["x-tiergate-route"] == "greeting" and answer.headers["x-tiergate-tier"] == "0"
    assert answer.headers["x-tiergate-score"] == "0.5000"
    row = {r["request_id"]: r for r in svc.ledger.rows()}[answer.headers["x-request-id"]]
    assert (row["route"], row["tier"]) == ("greeting", 0)


def test_a_reload_embeds_changed_routes_again_and_keeps_the_rest(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    cfg = routed(api_config(fresh_upstream.base_url), ["hello"])
    cfg["policies"]["strict"]["routes"] = [{"name": "ok", "examples": ["ok"], "tier": 0, "min_similarity": 0.99}]
    server, svc = gateway_factory(cfg, score=None)
    kept = svc.pipeline.route_examples["strict"]
    assert ask(server.url, "good morning").headers["x-tiergate-tier"] == "1"
    rewire(svc, TiergateConfig.model_validate(routed(cfg, ["hello", "good morning"])))
    assert ask(server.url, "good morning").headers["x-tiergate-route"] == "greeting"
    assert svc.pipeline.route_examples["strict"] is kept  # unchanged: not embedded again
    same = routed(cfg, ["hello", "good morning"])
    same["policies"]["strict"]["routes"] = same["policies"]["default"]["routes"]
    rewire(svc, TiergateConfig.model_validate(same))
    assert svc.pipeline.route_examples["strict"] is svc.pipeline.route_examples["default"]  # embedded once
